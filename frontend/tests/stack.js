// The live stack for the mini-program tests: `python -m tests.support.stack` (the test
// upstream as the model, the code2Session stand-in, a daphne server process on loopback,
// a fresh SQLite database), started from here and stopped with the test process.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const START_TIMEOUT_MS = 90000;

function python() {
  if (process.env.PYTHON) return process.env.PYTHON;
  const venv = `${root}.venv/bin/python`;
  return existsSync(venv) ? venv : 'python3';
}

async function postJson(url, body) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(`${url}: ${response.status} ${JSON.stringify(data)}`);
  return data;
}

/** Start the stack; resolves `{url, script(options), scenario(tag), code(openid), stop()}`. */
export function startStack() {
  const child = spawn(python(), ['-m', 'tests.support.stack'], {
    cwd: root,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error('the live stack did not start within 90 s'));
    }, START_TIMEOUT_MS);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the live stack exited (${code}) before it was ready`));
    });
    const lines = createInterface({ input: child.stdout });
    lines.once('line', (line) => {
      clearTimeout(timer);
      const ready = JSON.parse(line);
      resolve({
        url: ready.url,
        briefUrl: ready.brief_url,
        /** Script the upstream (tests/support/upstream.py's Scenario fields). */
        script: (options) => postJson(`${ready.control}/scenarios`, options),
        scenario: (tag) => fetch(`${ready.control}/scenarios/${tag}`).then((r) => r.json()),
        /** A single-use wx.login code that logs in as `openid`. */
        code: (openid) => postJson(`${ready.control}/wechat-codes`, { openid }).then((r) => r.code),
        stop() {
          child.removeAllListeners('exit');
          return new Promise((done) => {
            child.on('exit', done);
            child.stdin.end(); // the stack stops when its standard input closes
          });
        },
      });
    });
  });
}
