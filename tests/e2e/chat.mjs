// Drives the real Open WebUI in headless Debian Chromium: one chat turn, a screenshot, and a JSON report on stdout.
// Usage: NODE_PATH=$LLMWATCH_CACHE/e2e-node/node_modules node tests/e2e/chat.mjs \
//          --url http://127.0.0.1:8080 --model MODEL_ID --message "..." --screenshot out.png [--timeout-ms 60000]
// Everything waits on a selector with a deadline; a failure still prints JSON (with "error") and exits 1.
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

// playwright-core lives in the install cache, not in the clone: CommonJS resolution honours NODE_PATH, ESM does not.
const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' },
    model: { type: 'string' },
    message: { type: 'string' },
    screenshot: { type: 'string' },
    'timeout-ms': { type: 'string', default: '60000' },
  },
});
for (const name of ['url', 'model', 'message', 'screenshot']) {
  if (!opts[name]) {
    process.stderr.write(`chat.mjs: --${name} is required\n`);
    process.exit(2);
  }
}
const timeout = Number(opts['timeout-ms']);
const report = { url: opts.url, model: opts.model, message: opts.message, screenshot: opts.screenshot, steps: [] };
const consoleErrors = [];

// Flags from the brief: no network besides 127.0.0.1, no GPU, no background services of Chromium's own.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-component-update', '--disable-sync'],
  timeout,
});
const step = (name) => report.steps.push(name);
let failed = false;
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
try {
  page.setDefaultTimeout(timeout);
  page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text().slice(0, 300)));

  // ?model= preselects the model for a new chat (Chat.svelte reads it), so no dropdown clicking is needed.
  await page.goto(`${opts.url}/?model=${encodeURIComponent(opts.model)}`, { waitUntil: 'domcontentloaded' });
  const input = page.locator('#chat-input');
  await input.waitFor({ state: 'visible' });
  step('chat input visible');

  // An admin whose settings lack this version gets the "What's New" notes over the chat, a moment after the page.
  // A click right after it opens can be lost while it re-renders, so click until it is gone.
  const okay = page.getByRole('button', { name: "Okay, Let's Go!" });
  const notesShown = await okay.waitFor({ state: 'visible', timeout: 5000 }).then(() => true, () => false);
  if (notesShown) {
    const deadline = Date.now() + 20000;
    for (let closed = false; !closed; ) {
      if (Date.now() > deadline) throw new Error("the release notes did not close after clicking \"Okay, Let's Go!\"");
      await okay.click({ timeout: 2000 }).catch(() => {});
      closed = await okay.waitFor({ state: 'hidden', timeout: 2000 }).then(() => true, () => false);
    }
  }
  step(notesShown ? 'release notes dismissed' : 'no release notes');
  report.selected_model = (await page.locator('#model-selector-model-button').innerText()).trim();

  await input.click();
  await page.keyboard.type(opts.message);
  await page.keyboard.press('Enter');
  step('message sent');

  // The reply's toolbar (copy button) is rendered only once the message is done (ResponseMessage.svelte).
  const messageEl = page.locator('div[id^="message-"]').filter({ has: page.locator('.chat-assistant') }).last();
  await messageEl.locator('.copy-response-button').waitFor({ state: 'visible' });
  step('reply done');
  const messageId = (await messageEl.getAttribute('id')).slice('message-'.length);
  report.message_id = messageId;

  const content = messageEl.locator('#response-content-container');
  const reasoning = content.locator('button[aria-expanded]').first();
  report.reasoning_present = (await reasoning.count()) > 0;
  if (report.reasoning_present) {
    report.reasoning_label = (await reasoning.innerText()).trim();
    report.reasoning_expanded = (await reasoning.getAttribute('aria-expanded')) === 'true';
  }
  // The reply as the reader sees it: the rendered content minus the collapsed reasoning header.
  const full = (await content.innerText()).trim();
  report.answer_text = (report.reasoning_label && full.startsWith(report.reasoning_label)
    ? full.slice(report.reasoning_label.length)
    : full).trim();

  // Token usage: a hidden <span id="usage-ID"> plus an info button whose tooltip shows the same text.
  const usage = page.locator(`#usage-${messageId}`);
  report.usage_shown = (await usage.count()) > 0;
  report.usage_text = report.usage_shown ? (await usage.textContent()).trim() : null;
  const info = page.locator(`#info-${messageId}`);
  report.info_button = (await info.count()) > 0;
  if (report.info_button) {
    await info.hover();
    const tip = page.locator('[data-tippy-root]').filter({ hasText: 'tokens' }).last();
    await tip.waitFor({ state: 'visible', timeout: 5000 });
    report.usage_tooltip = (await tip.innerText()).trim();
    step('usage tooltip open');
  }
  await page.screenshot({ path: opts.screenshot });
  step('screenshot taken');
} catch (err) {
  failed = true;
  report.error = String(err && err.message ? err.message : err).slice(0, 2000);
  await page.screenshot({ path: opts.screenshot }).catch(() => {}); // what the page showed when it failed
} finally {
  report.console_errors = consoleErrors;
  await browser.close();
}
process.stdout.write(JSON.stringify(report) + '\n');
process.exit(failed ? 1 : 0);
