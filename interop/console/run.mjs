// Drives the admin console in the system's headless Chromium: signs in
// with an admin client, edits an action, checks that the change is a new
// catalog version with its diff, and traces a token. Usage:
//   node run.mjs CONSOLE_URL CLIENT_ID CLIENT_SECRET [TOKEN_ID]
// Chromium is /usr/bin/chromium unless SOTTO_CHROMIUM names another.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, clientId, secret, tokenId] = process.argv.slice(2);
if (!base || !clientId || !secret) {
  console.error('usage: node run.mjs CONSOLE_URL CLIENT_ID CLIENT_SECRET');
  process.exit(2);
}

function check(condition, message) {
  if (!condition) {
    throw new Error(message);
  }
  console.log('ok:', message);
}

const profile = mkdtempSync(join(tmpdir(), 'sotto-console-'));
// playwright-core passes the fresh profile folder as --user-data-dir.
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.SOTTO_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
try {
  const page = await browser.newPage();
  const violations = [];
  // Pages answered 401 or 422 on purpose are logged as failed loads too,
  // so only policy violations and script errors count.
  page.on('console', (msg) => {
    if (msg.type() === 'error' && msg.text().includes('Content Security Policy')) violations.push(msg.text());
  });
  page.on('pageerror', (err) => violations.push(err.message));

  await page.goto(`${base}/console/catalog`);
  check(page.url().endsWith('/console/login'), 'an anonymous visit is sent to the sign-in page');

  await page.fill('#client_id', clientId);
  await page.fill('#client_secret', 'wrong');
  await page.click('#sign-in');
  const refusal = await page.textContent('#problems');
  check(refusal.includes('Sign-in failed'), `a wrong secret is refused (${refusal.trim()})`);

  await page.fill('#client_id', clientId);
  await page.fill('#client_secret', secret);
  await page.click('#sign-in');
  check(page.url().endsWith('/console/catalog'), 'signing in opens the catalog');
  const before = Number(await page.textContent('#catalog-version'));

  const cookies = await browser.cookies();
  const session = cookies.find((c) => c.name === 'sotto_console');
  check(session && session.httpOnly && session.sameSite === 'Strict', 'the session cookie is HttpOnly and SameSite=Strict');

  await page.click('a[href="/console/actions/ticket:create"]');
  await page.fill('#max_ttl', 'ten minutes');
  await page.click('#save');
  check((await page.textContent('#problems')).includes('max_ttl'), 'an invalid max_ttl is shown as a validation message');

  await page.fill('#max_ttl', '4m');
  await page.fill('#description', 'Create an IT ticket (edited in the console)');
  await page.fill('#comment', 'browser test');
  await page.click('#save');
  check((await page.textContent('#notice')).includes(`catalog version ${before + 1}`), 'saving reports the new catalog version');

  await page.goto(`${base}/console/versions`);
  check((await page.textContent('#versions')).includes('browser test'), 'the version history lists the change');
  await page.click(`a[href="/console/versions/${before + 1}"]`);
  const diff = await page.textContent('#diff');
  check(diff.includes('4m0s') && diff.includes('5m0s'), 'the version page shows the diff with before and after');

  if (tokenId) {
    await page.goto(`${base}/console/trace`);
    await page.fill('#trace-id', tokenId);
    await page.click('#trace');
    check((await page.textContent('#trace-tokens')).includes(tokenId), 'the trace page shows the token');
    check((await page.textContent('#trace-records')).includes('issued'), 'the trace page shows the exchange that issued it');
  }

  check(violations.length === 0, `no Content-Security-Policy violations or script errors (${violations.join('; ')})`);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
