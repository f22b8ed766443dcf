// A real SMTP server for the browser tests (RFC 5321: EHLO/HELO, MAIL, RCPT, DATA with
// dot-unstuffing, RSET, NOOP, QUIT), keeping each accepted message in memory. The same
// protocol as tests/support/smtp.rs, for the Rust tests; it needs nothing but Node.
'use strict';
const net = require('node:net');

function startSmtp(port, host = '127.0.0.1') {
  const messages = [];
  const server = net.createServer((socket) => {
    let buf = '';
    let inData = false;
    let data = [];
    let from = null;
    let to = [];
    const reply = (line) => socket.write(`${line}\r\n`);
    reply('220 bleepless-test-smtp ESMTP ready');
    socket.setEncoding('utf8');
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i).replace(/\r$/, '');
        buf = buf.slice(i + 1);
        if (inData) {
          if (line === '.') {
            messages.push(data.map((l) => `${l}\r\n`).join(''));
            inData = false; data = []; from = null; to = [];
            reply('250 2.0.0 OK: queued');
          } else {
            data.push(line.startsWith('.') ? line.slice(1) : line);
          }
          continue;
        }
        const [verb, ...rest] = line.split(' ');
        const arg = rest.join(' ').trim();
        switch (verb.toUpperCase()) {
          case 'EHLO': from = null; to = []; reply(`250-bleepless-test-smtp greets ${arg}\r\n250 8BITMIME`); break;
          case 'HELO': from = null; to = []; reply('250 bleepless-test-smtp'); break;
          case 'MAIL': {
            const m = /^FROM:\s*<([^>]*)>/i.exec(arg);
            if (!m) reply('501 5.5.4 syntax: MAIL FROM:<address>');
            else { from = m[1]; reply('250 2.1.0 OK'); }
            break;
          }
          case 'RCPT': {
            const m = /^TO:\s*<([^>]+@[^>]+)>/i.exec(arg);
            if (from === null) reply('503 5.5.1 need MAIL first');
            else if (!m) reply('501 5.5.4 syntax: RCPT TO:<address>');
            else { to.push(m[1]); reply('250 2.1.5 OK'); }
            break;
          }
          case 'DATA':
            if (!to.length) reply('503 5.5.1 need RCPT first');
            else { inData = true; reply('354 end data with <CR><LF>.<CR><LF>'); }
            break;
          case 'RSET': from = null; to = []; reply('250 2.0.0 OK'); break;
          case 'NOOP': reply('250 2.0.0 OK'); break;
          case 'QUIT': reply('221 2.0.0 bye'); socket.end(); break;
          default: reply('500 5.5.2 command not recognised');
        }
      }
    });
  });
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(port, host, () => resolve({ messages, close: () => server.close() }));
  });
}

module.exports = { startSmtp };
