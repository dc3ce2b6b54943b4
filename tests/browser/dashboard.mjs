// The seed's dashboard flow in headless Chromium, against a real server.
// Driven by crates/cli/tests/dashboard_e2e.rs, which starts the server and
// passes (env): BASE, TOKEN, EMAIL, PASSWORD, ORG_ID, GROUP_ID, ACCOUNT,
// CHANNEL_ARN, OTHER_ORG_ID, OTHER_TOKEN (the other org's admin), SHOTS
// (screenshot directory). Exits non-zero on the first
// failed check, saying which.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`missing ${k}`);
  return v;
};
const BASE = env("BASE"), TOKEN = env("TOKEN"), ORG = env("ORG_ID"), GROUP = env("GROUP_ID");
const ACCOUNT = env("ACCOUNT"), ARN = env("CHANNEL_ARN"), OTHER = env("OTHER_ORG_ID"), SHOTS = env("SHOTS");
const OTHER_TOKEN = env("OTHER_TOKEN");
const EMAIL = env("EMAIL"), PASSWORD = env("PASSWORD");
mkdirSync(SHOTS, { recursive: true });

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-background-networking"],
});
let step = 0;
const shot = async (page, name) => {
  step += 1;
  await page.screenshot({ path: `${SHOTS}/${String(step).padStart(2, "0")}-${name}.png`, fullPage: true });
};

try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: BASE });
  const page = await context.newPage();

  // Signed out: pages send you to sign in.
  await page.goto(`${BASE}/orgs/${ORG}/settings`);
  assert.match(page.url(), /\/login$/);

  // A wrong token is refused, then the right one signs in.
  await page.fill("#token", "alk_not-a-token");
  await page.getByRole("button", { name: "Sign in with token" }).click();
  await page.getByRole("alert").waitFor();
  assert.match(await page.getByRole("alert").innerText(), /invalid/);
  await shot(page, "sign-in-refused");
  await page.fill("#token", TOKEN);
  await page.getByRole("button", { name: "Sign in with token" }).click();
  await page.getByRole("heading", { name: "Your organizations and groups" }).waitFor();
  await shot(page, "home");

  // Organization settings: the Organization ID, copied with the button.
  await page.goto(`${BASE}/orgs/${ORG}/settings`);
  assert.equal((await page.locator("#org-id").innerText()).trim(), ORG);
  await page.getByRole("button", { name: "Copy the Organization ID" }).click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), ORG);
  await shot(page, "org-settings");

  // Group settings, reached by clicking the group's name: the Group ID.
  await page.locator(`dd a[href="/groups/${GROUP}/settings"]`).click();
  await page.getByRole("heading", { name: "Group settings" }).waitFor();
  assert.equal((await page.locator("#group-id").innerText()).trim(), GROUP);
  await page.getByRole("button", { name: "Copy the Group ID" }).click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), GROUP);
  // A registration for the group, made and removed from this page.
  await page.fill("#name", "Group lake");
  await page.fill("#account_id", "12345");
  await page.fill("#channel_arn", ARN);
  await page.click("form.card button[type=submit]");
  assert.match(await page.locator("#account_id-error").innerText(), /12-digit/);
  await page.fill("#account_id", ACCOUNT);
  await page.click("form.card button[type=submit]");
  await page.getByText("The registration was saved").waitFor();
  await shot(page, "group-settings");
  await page.getByRole("link", { name: "Group lake" }).click();
  await page.getByRole("link", { name: "Remove integration" }).click();
  await page.getByRole("button", { name: "Remove integration" }).click();
  await page.getByText("The registration was removed.").waitFor();
  assert.equal(await page.locator("table.integrations").count(), 0);

  // Integrations > Cloud events > AWS CloudTrail Lake.
  await page.goto(`${BASE}/orgs/${ORG}/integrations`);
  await page.getByRole("heading", { name: "Cloud events" }).waitFor();
  await shot(page, "integrations");
  await page.getByRole("link", { name: /AWS CloudTrail Lake/ }).first().click();
  await page.getByRole("heading", { name: "Connect AWS CloudTrail Lake" }).waitFor();

  // Validation next to each field: a bad ARN, then a wrong account.
  await page.fill("#name", "Security lake");
  await page.fill("#account_id", ACCOUNT);
  await page.fill("#channel_arn", "arn:aws:s3:::not-a-channel");
  await page.click("form.card button[type=submit]");
  assert.match(await page.locator("#channel_arn-error").innerText(), /not a CloudTrail channel ARN/);
  assert.equal(await page.inputValue("#name"), "Security lake", "the form keeps what was typed");
  await shot(page, "bad-arn");
  await page.fill("#account_id", "999999999999");
  await page.fill("#channel_arn", ARN);
  await page.click("form.card button[type=submit]");
  assert.match(await page.locator("#channel_arn-error").innerText(), /belongs to account/);
  await shot(page, "wrong-account");

  // The right values: saved, then "View settings".
  await page.fill("#account_id", ACCOUNT);
  await page.click("form.card button[type=submit]");
  await page.getByRole("heading", { name: "Integration saved" }).waitFor();
  await shot(page, "saved");
  await page.getByRole("link", { name: "View settings" }).click();
  await page.getByRole("heading", { name: "AWS CloudTrail Lake settings" }).waitFor();

  // It turns healthy once events reach the lake (the server forwards to its own lake).
  let status = "";
  for (let i = 0; i < 120 && status !== "healthy"; i++) {
    await page.reload();
    status = (await page.locator("table.integrations .status").first().innerText()).trim();
    if (status !== "healthy") await page.waitForTimeout(250);
  }
  assert.equal(status, "healthy");
  await shot(page, "healthy");

  // The lake query console: the seed's query for the org's store, run.
  await page.goto(`${BASE}/orgs/${ORG}/settings`);
  await page.getByRole("link", { name: "Lake queries" }).click();
  const sql = await page.inputValue("#sql");
  assert.match(sql, /from [0-9a-f-]{36}/);
  const store = sql.match(/from ([0-9a-f-]{36})/)[1];
  await page.getByRole("button", { name: "Run query" }).click();
  await page.locator("table.results").waitFor();
  const header = await page.locator("table.results thead").innerText();
  for (const col of ["eventtime", "useridentity", "eventname", "additionaleventdata"]) assert.match(header, new RegExp(col));
  assert.match(await page.locator("table.results tbody").innerText(), /org\.cloud_events\.integration\.create/);
  await shot(page, "console-seed-query");
  // A grouped query gets a chart; a CSV download of it.
  await page.fill("#sql", `select eventdata.eventname, count(*) as n from ${store} group by eventdata.eventname`);
  await page.getByRole("button", { name: "Run query" }).click();
  await page.locator("figure.bars meter").first().waitFor();
  await shot(page, "console-chart");
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: "Download CSV" }).click(),
  ]);
  const csvPath = await download.path();
  const { readFileSync } = await import("node:fs");
  assert.match(readFileSync(csvPath, "utf8"), /^eventname,n\r\n/);
  // Errors as the lake reports them; other stores refused.
  await page.fill("#sql", `delete from ${store}`);
  await page.getByRole("button", { name: "Run query" }).click();
  assert.match(await page.getByRole("alert").innerText(), /InvalidQueryStatementException/);
  await page.fill("#sql", "select * from 00000000-0000-4000-8000-000000000000");
  await page.getByRole("button", { name: "Run query" }).click();
  assert.match(await page.getByRole("alert").innerText(), /only the event data stores of this organization/);
  await shot(page, "console-error");

  // The other org's admin names this org's channel ARN (not a secret) in an
  // integration of their own: it is saved, but the channel's policy admits
  // only this org's External ID, so their console lists no store and
  // refuses this one.
  const intruder = await (await browser.newContext()).newPage();
  await intruder.goto(`${BASE}/login`);
  await intruder.fill("#token", OTHER_TOKEN);
  await intruder.getByRole("button", { name: "Sign in with token" }).click();
  await intruder.getByRole("heading", { name: "Your organizations and groups" }).waitFor();
  await intruder.goto(`${BASE}/orgs/${OTHER}/integrations/cloudtrail/new`);
  await intruder.fill("#name", "Borrowed lake");
  await intruder.fill("#account_id", ACCOUNT);
  await intruder.fill("#channel_arn", ARN);
  await intruder.click("form.card button[type=submit]");
  await intruder.getByRole("heading", { name: "Integration saved" }).waitFor();
  await intruder.goto(`${BASE}/orgs/${OTHER}/lake`);
  assert.doesNotMatch(await intruder.locator("main").innerText(), new RegExp(store));
  assert.equal(await intruder.inputValue("#sql"), "", "no store to prefill a query for");
  await intruder.fill("#sql", `select eventdata.additionaleventdata from ${store}`);
  await intruder.getByRole("button", { name: "Run query" }).click();
  assert.match(await intruder.getByRole("alert").innerText(), /AccessDeniedException/);
  assert.equal(await intruder.locator("table.results").count(), 0);
  await shot(intruder, "console-other-tenant-refused");
  await intruder.context().close();

  await page.goto(`${BASE}/orgs/${ORG}/integrations/cloudtrail`);

  // Its detail, then removal with a confirmation step.
  await page.getByRole("link", { name: "Security lake" }).click();
  await page.getByRole("link", { name: "Remove integration" }).click();
  await page.getByRole("heading", { name: "Remove integration?" }).waitFor();
  await shot(page, "confirm-remove");
  await page.getByRole("button", { name: "Remove integration" }).click();
  await page.getByText("The integration was removed.").waitFor();
  assert.equal(await page.locator("table.integrations").count(), 0);
  await shot(page, "removed");

  // The audit log: a chart, the events, a filter, and an edit's before/after.
  await page.goto(`${BASE}/orgs/${ORG}/settings`);
  await page.getByRole("link", { name: "Audit log" }).click();
  await page.getByRole("heading", { name: "Audit log" }).waitFor();
  assert.ok((await page.locator("figure.chart rect").count()) >= 7, "a bar per day of the week shown");
  assert.ok((await page.locator("table.events tbody tr").count()) >= 3);
  await shot(page, "audit-log");
  await page.fill("#event", "org.settings.edit");
  await page.click("form.filters button[type=submit]");
  const rows = page.locator("table.events tbody tr");
  assert.equal(await rows.count(), 1);
  assert.match(await rows.first().innerText(), /org\.settings\.edit/);
  await rows.first().locator("a").click();
  await page.locator("table.diff").waitFor();
  assert.match(await page.locator("table.diff").innerText(), /require_mfa\s+null\s+true/);
  assert.match(await page.locator("pre.json").innerText(), /"after"/);
  await shot(page, "audit-event");
  await page.goto(`${BASE}/orgs/${ORG}/audit?from=not-a-date`);
  assert.match(await page.getByRole("alert").innerText(), /must be a date/);

  // Another tenant's pages are refused.
  const res = await page.goto(`${BASE}/orgs/${OTHER}/settings`);
  assert.equal(res.status(), 404);
  assert.equal((await page.goto(`${BASE}/orgs/${OTHER}/audit`)).status(), 404);
  await shot(page, "other-tenant");

  // Phone width: the settings page still fits.
  await page.setViewportSize({ width: 375, height: 740 });
  await page.goto(`${BASE}/orgs/${ORG}/settings`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  assert.equal(overflow, false, "no horizontal scrolling at 375 px");
  await shot(page, "phone");

  // Keyboard: Tab reaches the copy button.
  let reached = false;
  for (let i = 0; i < 15 && !reached; i++) {
    await page.keyboard.press("Tab");
    reached = await page.evaluate(() => document.activeElement?.classList.contains("copy"));
  }
  assert.ok(reached, "the copy button is reachable by keyboard");
  // Sign out, then in again with the email and password.
  await page.setViewportSize({ width: 1100, height: 800 });
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  await page.fill("#email", EMAIL);
  await page.fill("#password", "wrong password here");
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  assert.match(await page.getByRole("alert").innerText(), /email or the password is wrong/);
  assert.equal(await page.inputValue("#email"), EMAIL);
  await page.fill("#password", PASSWORD);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByRole("heading", { name: "Your organizations and groups" }).waitFor();
  await shot(page, "password-sign-in");
  console.log(`dashboard flow passed; screenshots in ${SHOTS}`);
} finally {
  await browser.close();
}
