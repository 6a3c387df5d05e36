// vmshiftd's dashboard in headless Chromium (Debian's chromium, driven
// by puppeteer-core, which never downloads a browser): the token is
// entered, a VM's progress is seen moving while it migrates, then the
// VM migrated with its downtime; screenshots of both are kept.
//
// Usage: node dashboard.mjs URL TOKEN OUTDIR [VM]
//   URL     vmshiftd's, e.g. http://127.0.0.1:8086/
//   TOKEN   its bearer token
//   OUTDIR  where running.png and finished.png go (failed.png on failure)
//   VM      the VM to follow (default: the first the dashboard shows)
// It prints "dashboard.mjs: watching" once the dashboard is up (start
// the migration then), and exits nonzero saying which expectation
// failed.  CHROMIUM overrides /usr/bin/chromium.
// SPDX-License-Identifier: LGPL-2.1-or-later
import {mkdirSync} from 'node:fs';
import {join} from 'node:path';
import puppeteer from 'puppeteer-core';

// How long the page may take to come up, and the migration to start and
// to end, at the slow rate the test gives it (ms).
const PAGE_TIMEOUT_MS = 30_000;
const RUNNING_TIMEOUT_MS = 180_000;
const FINISHED_TIMEOUT_MS = 360_000;
const POLL_MS = 100;

class Expectation extends Error {}

function say(text) {
  console.log('dashboard.mjs: ' + text);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// What the page shows of the VM's row (vm: NULL, the first VM's): its
// data-* attributes, its downtime cell, its bar's width, and the
// chart's bar of its downtime; null when there is no such row.  Run in
// the page (puppeteer's own polling compiles code there, which the
// page's Content-Security-Policy forbids).
function readRow(vm) {
  const selector = vm ? `tr[data-vm="${CSS.escape(vm)}"]` : 'tr[data-vm]';
  const row = document.querySelector(selector);
  if (!row)
    return null;
  const charted = document.querySelector(
      `#chart rect.actual[data-vm="${CSS.escape(row.dataset.vm)}"]` +
      '[data-measure="downtime-ms"]');
  const alert = document.querySelector(
      `#alerts li[data-event="migrated"][data-vm="${CSS.escape(row.dataset.vm)}"]`);
  return {
    ...row.dataset,
    downtimeText: row.querySelector('.downtime').textContent,
    downtimeOver: row.querySelector('.downtime').classList.contains('over'),
    migratedAlert: alert ? alert.className : null,
    barWidth: row.querySelector('.bar .fill').style.width,
    chartedDowntimeMs: charted ? charted.dataset.value : null,
    dashboardVisible: !document.getElementById('dashboard').hidden,
  };
}

// Poll the row until check (row) holds; the row, or an Expectation
// naming what was awaited and the row as it was last.
async function waitForRow(page, vm, what, check, timeout) {
  const end = Date.now() + timeout;
  let row = null;
  for (;;) {
    row = await page.evaluate(readRow, vm || null);
    if (row && check(row))
      return row;
    if (Date.now() > end)
      throw new Expectation(`${what}: not seen within ${timeout / 1000} s; ` +
                            `the row: ${JSON.stringify(row)}`);
    await sleep(POLL_MS);
  }
}

const ACTIVE = ['copying', 'synced', 'migrating'];

async function logIn(page, url, token) {
  await page.goto(url, {waitUntil: 'load', timeout: PAGE_TIMEOUT_MS});
  const form = await page.evaluate(
      () => !document.getElementById('login').hidden);
  if (!form)
    throw new Expectation('the dashboard does not ask for the token');
  await page.type('#token', token);
  await page.click('#login button[type=submit]');
  const end = Date.now() + PAGE_TIMEOUT_MS;
  for (;;) {
    const seen = await page.evaluate(() => ({
      live: document.getElementById('connection').dataset.state === 'live',
      error: document.getElementById('login-error').textContent,
    }));
    if (seen.live)
      return;
    if (seen.error || Date.now() > end)
      throw new Expectation('the dashboard did not open with the token: ' +
                            (seen.error || 'no event stream'));
    await sleep(POLL_MS);
  }
}

// Progress seen at two different values while the VM migrates.
async function watchProgress(page, vm, outdir) {
  const first = await waitForRow(
      page, vm, 'the VM migrating with its progress',
      (row) => ACTIVE.includes(row.status) && Number(row.done) > 0 &&
          Number(row.progress) < 100,
      RUNNING_TIMEOUT_MS);
  say(`running: ${first.vm} ${first.phase} at ${first.progress}% ` +
      `(${first.done} of ${first.total} bytes)`);
  const moved = await waitForRow(
      page, first.vm, `its progress moving from ${first.progress}%`,
      (row) => ACTIVE.includes(row.status) && Number(row.done) > 0 &&
          row.done !== first.done,
      RUNNING_TIMEOUT_MS);
  say(`running: ${moved.vm} ${moved.phase} at ${moved.progress}% ` +
      `(${moved.done} of ${moved.total} bytes)`);
  if (parseFloat(moved.barWidth) !== Number(moved.progress))
    throw new Expectation(`the progress bar is ${moved.barWidth} wide, ` +
                          `for ${moved.progress}%`);
  await page.screenshot({path: join(outdir, 'running.png'), fullPage: true});
  return first.vm;
}

// The VM migrated, its downtime in its row and in the chart.
async function watchFinished(page, vm, outdir) {
  const done = await waitForRow(
      page, vm, 'the VM migrated with its downtime, in its row and the chart',
      (row) => row.status === 'migrated' && row.downtimeMs !== undefined &&
          Number(row.downtimeMs) >= 0 && /\d+ ms/.test(row.downtimeText) &&
          row.chartedDowntimeMs !== null,
      FINISHED_TIMEOUT_MS);
  say(`finished: ${done.vm} ${done.status}, downtime ${done.downtimeMs} ms ` +
      `("${done.downtimeText}"), ${done.seconds} s`);
  if (done.progress !== '100.0')
    throw new Expectation(`a migrated VM shows ${done.progress}%, not 100%`);
  if (done.chartedDowntimeMs !== done.downtimeMs)
    throw new Expectation(`the chart shows a downtime of ` +
                          `${done.chartedDowntimeMs} ms, the row ` +
                          `${done.downtimeMs} ms`);
  // A downtime over its objective is marked, and alerted.
  const over = Number(done.maxDowntimeMs) > 0 &&
      Number(done.downtimeMs) > Number(done.maxDowntimeMs);
  if (over !== done.downtimeOver)
    throw new Expectation(`a downtime of ${done.downtimeMs} ms for an ` +
                          `objective of ${done.maxDowntimeMs} ms is ` +
                          `${done.downtimeOver ? '' : 'not '}marked over it`);
  if (over && done.migratedAlert !== 'bad')
    throw new Expectation(`the objective missed is not alerted (alert: ` +
                          `${done.migratedAlert})`);
  if (over)
    say(`objective of ${done.maxDowntimeMs} ms missed: marked and alerted`);
  await page.screenshot({path: join(outdir, 'finished.png'), fullPage: true});
}

async function main() {
  const [url, token, outdir, vm] = process.argv.slice(2);
  if (!url || !token || !outdir) {
    console.error('usage: node dashboard.mjs URL TOKEN OUTDIR [VM]');
    return 2;
  }
  mkdirSync(outdir, {recursive: true});
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // Chromium's sandbox refuses to run as root.
    args: [...(process.getuid() === 0 ? ['--no-sandbox'] : []),
           '--disable-dev-shm-usage', '--disable-gpu'],
    defaultViewport: {width: 1280, height: 900},
  });
  const problems = [];
  let page;
  try {
    page = await browser.newPage();
    page.on('pageerror', (error) => problems.push('page error: ' + error.message));
    page.on('console', (message) => {
      // A script or style the Content-Security-Policy refused, or one
      // of ours failing, is a defect of the page.
      if (message.type() === 'error')
        problems.push('console: ' + message.text());
    });
    await logIn(page, url, token);
    say('watching');
    const watched = await watchProgress(page, vm, outdir);
    await watchFinished(page, watched, outdir);
    const alerts = await page.evaluate(
        () => document.getElementById('alerts').dataset.count);
    say(`alerts shown: ${alerts}`);
    if (problems.length)
      throw new Expectation('the page reported errors:\n  ' + problems.join('\n  '));
    say(`screenshots in ${outdir}: running.png, finished.png`);
    return 0;
  } catch (error) {
    console.error('dashboard.mjs: FAILED: ' + error.message);
    if (problems.length)
      console.error('dashboard.mjs: the page said:\n  ' + problems.join('\n  '));
    if (page)
      await page.screenshot({path: join(outdir, 'failed.png'), fullPage: true})
          .catch(() => {});
    return 1;
  } finally {
    await browser.close();
  }
}

process.exitCode = await main();
