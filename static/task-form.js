// The task form: the error summary takes focus when the server found problems, and the NHS
// number's check digit is checked as it is typed (the server checks it again). The number
// has one message at a time: what the check finds replaces what the server said.
(function () {
  const summary = document.getElementById('error-summary');
  if (summary) summary.focus();
  const input = document.getElementById('nhs_number');
  const out = document.getElementById('nhs_number-error');
  const group = document.getElementById('nhs_number-group');
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
    out.textContent = '';
    if (p) {
      const hidden = document.createElement('span');
      hidden.className = 'nhsuk-u-visually-hidden';
      hidden.textContent = 'Error:';
      out.append(hidden, ' ' + p);
    }
    if (p) input.setAttribute('aria-invalid', 'true'); else input.removeAttribute('aria-invalid');
    input.classList.toggle('nhsuk-input--error', !!p);
    if (group) group.classList.toggle('nhsuk-form-group--error', !!p);
  }
  input.addEventListener('input', update);
  input.addEventListener('blur', update);
  window.nhsNumberProblem = problem;
})();
