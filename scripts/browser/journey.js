// The storefront journey in a real browser (issue 14 item 6): sign up, search, open a product,
// add it to the cart, check out, see the order confirmed — in headless Chromium driven by
// Playwright, a screenshot of every step kept in OUT. Then the checkout's trace, read from the
// gateway's admin API as an administrator, must hold the storefront's page and the saga's
// steps in one trace. Then the ops console as the administrator: logged out, /ops leads to the
// login page and back; the traces list, that checkout's waterfall with a span opened, its saga,
// the sagas list, dead letters, the mailbox and the services page, each one a screenshot.
// Any failed step, unexpected status or script error in a page exits 1.
//
//   node journey.js BASE_URL OUT_DIR ADMIN_EMAIL ADMIN_PASSWORD
const { chromium } = require('playwright-core');

const [base, out, adminEmail, adminPassword] = process.argv.slice(2);

function check(condition, what) {
  if (!condition) {
    throw new Error(`browser journey: ${what}`);
  }
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox'],
  });
  const page = await browser.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(String(e)));
  let step = 0;
  const shot = async (name) => {
    step += 1;
    const file = `${out}/${String(step).padStart(2, '0')}-${name}.png`;
    await page.screenshot({ path: file, fullPage: true });
    console.log(`${name}: ${page.url()} (${await page.title()})`);
  };
  const submit = (form) => Promise.all([
    page.waitForNavigation(),
    page.click(`form[action="${form}"] button[type=submit], form[action="${form}"] button:not([type])`),
  ]);

  const home = await page.goto(`${base}/`);
  check(home.status() === 200, `home answered ${home.status()}`);
  await shot('home');

  await page.goto(`${base}/signup`);
  await page.fill('form[action="/signup"] input[name=name]', 'Pat');
  await page.fill('form[action="/signup"] input[name=email]', `browser-${Date.now()}@example.com`);
  await page.fill('form[action="/signup"] input[name=password]', 'a long password 1');
  await submit('/signup');
  check((await page.innerText('body')).includes('Log out'), 'signed up and logged in');
  await shot('signed-up');

  await page.fill('input[name=q]', 'shears');
  await Promise.all([page.waitForNavigation(), page.press('input[name=q]', 'Enter')]);
  await shot('search');
  const product = await page.getAttribute('a[href^="/product/"]', 'href');
  check(product, 'the search found a product');
  await page.goto(`${base}${product}`);
  await shot('product');

  await submit('/cart/items');
  check(page.url().endsWith('/cart'), `adding to the cart went to ${page.url()}`);
  check(/Cart \(1\)/.test(await page.innerText('header')), 'the cart holds one item');
  await shot('cart');

  await page.goto(`${base}/checkout`);
  for (const [name, value] of [['name', 'Pat'], ['line1', '1 Main St'], ['city', 'Berlin'],
    ['postal_code', '10115'], ['card_number', '4242424242424242']]) {
    await page.fill(`form[action="/checkout"] [name=${name}]`, value);
  }
  const country = await page.$('form[action="/checkout"] [name=country]');
  if ((await country.evaluate((e) => e.tagName)) === 'SELECT') {
    await country.selectOption('DE');
  } else {
    await country.fill('DE');
  }
  await shot('checkout');
  await submit('/checkout');
  check(/\/orders\/ord_/.test(page.url()), `checking out went to ${page.url()}`);
  let confirmed = false;
  for (let i = 0; i < 50 && !confirmed; i += 1) {
    confirmed = (await page.innerText('main')).includes('Confirmed');
    if (!confirmed) {
      await page.waitForTimeout(200);
      await page.reload();
    }
  }
  check(confirmed, 'the order was confirmed within 10 s');
  await shot('order');
  check(problems.length === 0, `no script errors in the pages: ${problems.join('; ')}`);

  // The checkout, one trace: the storefront's page, orders and every saga step in it.
  const login = await page.request.post(`${base}/api/identity/login`,
    { data: { email: adminEmail, password: adminPassword } });
  check(login.ok(), `the administrator logs in (${login.status()})`);
  const admin = { authorization: `Bearer ${(await login.json()).access_token}` };
  const list = await page.request.get(`${base}/api/gateway/admin/traces?service=payments&limit=1`,
    { headers: admin });
  const [latest] = (await list.json()).traces;
  check(latest, 'a trace with a payment is listed');
  const trace = await (await page.request.get(
    `${base}/api/gateway/admin/traces/${latest.trace_id}`, { headers: admin })).json();
  const names = trace.spans.map((s) => `${s.service} ${s.name}`);
  for (const want of ['storefront POST /checkout', 'orders POST /', 'orders saga running AUTHORIZE',
    'payments POST /payments', 'inventory POST /reservations']) {
    check(names.includes(want), `the checkout's trace holds "${want}": ${names.join(', ')}`);
  }
  console.log(`trace ${latest.trace_id}: ${trace.spans.length} spans`);

  // The ops console: the customer is refused, the administrator logs in through the shop.
  const refused = await page.goto(`${base}/ops`);
  check(refused.status() === 403, `a customer asking for /ops got ${refused.status()}`);
  problems.length = 0; // Chromium reports the refused page's 403 as a console error.
  await page.goto(`${base}/`);
  await submit('/logout');
  await page.goto(`${base}/ops`);
  check(page.url().includes('/login?next=/ops'), `an anonymous /ops went to ${page.url()}`);
  await page.fill('form[action="/login"] input[name=email]', adminEmail);
  await page.fill('form[action="/login"] input[name=password]', adminPassword);
  await submit('/login');
  check(page.url().endsWith('/ops/traces'), `logging in went to ${page.url()}`);
  check((await page.innerText('h1')) === 'Traces', 'the traces page');
  await shot('ops-traces');

  const waterfall = await page.goto(`${base}/ops/traces/${latest.trace_id}`);
  check(waterfall.status() === 200, `the waterfall answered ${waterfall.status()}`);
  const chips = await page.$$eval('.wf-row .chip', (els) => els.map((e) => e.textContent));
  for (const service of ['gateway', 'storefront', 'orders', 'inventory', 'payments', 'shipping']) {
    check(chips.includes(service), `the waterfall shows ${service}: ${[...new Set(chips)]}`);
  }
  await shot('ops-trace-waterfall');
  await page.click('.wf-row summary:has-text("saga running AUTHORIZE")');
  check(await page.isVisible('.wf-row[open] .attrs'), 'a span opens to its attributes');
  await shot('ops-trace-span-open');

  const sagaLink = await page.getAttribute('a[href^="/ops/sagas/ord_"]', 'href');
  check(sagaLink, 'the waterfall links its saga');
  await page.goto(`${base}${sagaLink}`);
  const saga = await page.innerText('main');
  check(saga.includes('confirmed') && saga.includes('AUTHORIZE') && saga.includes(':authorize'),
    'the saga page shows its steps and keys');
  await shot('ops-saga');

  for (const [path, name] of [['/ops/sagas', 'ops-sagas'], ['/ops/dead-letters', 'ops-dead-letters'],
    ['/ops/mailbox', 'ops-mailbox'], ['/ops/services', 'ops-services']]) {
    const res = await page.goto(`${base}${path}`);
    check(res.status() === 200, `${path} answered ${res.status()}`);
    await shot(name);
  }
  check(problems.length === 0, `no script errors in the console: ${problems.join('; ')}`);
  await browser.close();
})().catch((e) => {
  console.error(e.message || e);
  process.exit(1);
});
