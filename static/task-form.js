// Checks the NHS number's check digit as it is typed (the server checks it again).
(function () {
  const input = document.getElementById('nhs_number');
  const out = document.getElementById('nhs_number-live');
  if (!input || !out) return;
  function problem(value) {
    const digits = value.replace(/\s+/g, '');
    if (digits === '') return '';
    if (!/^\d+$/.test(digits)) return 'An NHS number holds only digits.';
    if (digits.length < 10) return '';
    if (digits.length > 10) return 'An NHS number has 10 digits.';
    let sum = 0;
    for (let i = 0; i < 9; i++) sum += Number(digits[i]) * (10 - i);
    let check = 11 - (sum % 11);
    if (check === 11) check = 0;
    if (check === 10 || check !== Number(digits[9])) return 'This is not a valid NHS number: check for a typo.';
    return '';
  }
  function update() {
    const p = problem(input.value);
    out.textContent = p;
    input.setAttribute('aria-invalid', p ? 'true' : 'false');
  }
  input.addEventListener('input', update);
  input.addEventListener('blur', update);
  window.nhsNumberProblem = problem;
})();
