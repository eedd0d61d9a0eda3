/**
 * End-to-end: the web interface in real headless Chromium (Debian's /usr/bin/chromium through
 * playwright-core, no browser download) against the real registry process with token auth,
 * over images pushed by skopeo. One server and one browser for the whole file; the cases run in
 * order and build on each other. Screenshots are kept under the test's temp folder (the path is
 * printed) and survive the run.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { buildUi } from '../../src/build-ui.js';
import { buildOciImage, seededBytes, type BuiltImage } from '../helpers/oci-layout.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';
import { skopeoRunner, type Skopeo } from '../helpers/skopeo.js';
import { hasCommand } from '../helpers/tools.js';

const CHROMIUM = '/usr/bin/chromium';
const missing = [
  ...(hasCommand('skopeo') ? [] : ['skopeo']),
  ...(await fs.access(CHROMIUM).then(() => [], () => ['chromium'])),
];
if (missing.length) console.log(`web interface e2e skipped: ${missing.join(' and ')} not installed`);

const ADMIN_PASSWORD = 'ui-admin-password-123';
const READER_PASSWORD = 'reader-password-123';
const HEALTHCHECK = { Test: ['CMD-SHELL', 'wget -q -O- http://localhost:8080/healthz || exit 1'], Interval: 30e9, Timeout: 5e9, StartPeriod: 10e9, Retries: 3 };

describe('web interface in headless Chromium', { skip: missing.length ? `${missing.join(' and ')} not installed` : false }, () => {
  let work: string;
  let shots: string;
  let server: ServerProcess;
  let skopeo: Skopeo;
  let context: BrowserContext;
  let page: Page;
  let receiver: http.Server;
  let received = 0;
  let subscription: { id: string; secret: string };
  let image10: BuiltImage;
  const problems: string[] = [];

  const adminAuth = `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`;
  const apiJson = async (pathname: string, init: RequestInit = {}) => {
    const res = await fetch(`${server.url}${pathname}`, { ...init, headers: { Authorization: adminAuth, 'Content-Type': 'application/json', ...init.headers } });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Record<string, any>) : null };
  };
  const shot = (name: string) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
  const goto = async (pathname: string) => {
    await page.goto(`${server.url}${pathname}`);
  };
  const push = (layout: BuiltImage, target: string) =>
    skopeo('copy', '--dest-tls-verify=false', '--dest-creds', `admin:${ADMIN_PASSWORD}`, `oci:${layout.dir}:latest`, `docker://${server.host}/${target}`);

  before(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'ui-e2e-'));
    shots = path.join(work, 'screenshots');
    await fs.mkdir(shots);
    receiver = http.createServer((req, res) => {
      req.resume().on('end', () => {
        received++;
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const built = await buildUi(path.join(work, 'ui'));
    server = await startServer({
      env: {
        REGISTRY_AUTH: 'token',
        REGISTRY_ADMIN_PASSWORD: ADMIN_PASSWORD,
        REGISTRY_UI_ASSETS_DIR: built.outDir,
        REGISTRY_WEBHOOKS_ALLOW_HOSTS: '127.0.0.1',
      },
    });
    skopeo = await skopeoRunner(path.join(work, 'skopeo'));

    const created = await apiJson('/api/v1/webhooks', {
      method: 'POST',
      body: JSON.stringify({ id: 'deploy-hook', url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/`, repositories: ['team/*'] }),
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    subscription = { id: created.body!.id, secret: created.body!.secret };
    const reader = await apiJson('/api/v1/users', { method: 'POST', body: JSON.stringify({ name: 'reader', password: READER_PASSWORD, grants: [{ pattern: 'team/*', actions: ['pull'] }] }) });
    assert.equal(reader.status, 201, JSON.stringify(reader.body));

    const runSettings = {
      User: 'app',
      WorkingDir: '/srv/app',
      Entrypoint: ['/bin/app'],
      Cmd: ['serve'],
      Env: ['PATH=/usr/bin', 'APP_MODE=production'],
      ExposedPorts: { '8080/tcp': {} },
      Labels: { 'org.opencontainers.image.title': 'demo app' },
      Healthcheck: HEALTHCHECK,
    };
    const history = [{ created: '2030-01-01T00:00:00Z', created_by: 'COPY app /bin/app' }, { created_by: 'HEALTHCHECK &{["CMD-SHELL" "wget …"]}', empty_layer: true }];
    image10 = await buildOciImage(path.join(work, 'app-1.0'), [{ file: 'bin/app', content: seededBytes('app 1.0', 96 * 1024) }, { file: 'etc/app.conf', content: seededBytes('conf', 4096) }], {
      created: '2030-01-01T00:00:00Z',
      config: runSettings,
      history,
    });
    const image11 = await buildOciImage(path.join(work, 'app-1.1'), [{ file: 'bin/app', content: seededBytes('app 1.1', 100 * 1024) }], { config: runSettings });
    const other = await buildOciImage(path.join(work, 'secret'), [{ file: 'x', content: seededBytes('secret', 2048) }]);
    await push(image10, 'team/app:1.0.0');
    await push(image10, 'team/app:latest');
    await push(image11, 'team/app:1.1.0');
    await push(other, 'team/api:2.0');
    await push(other, 'other/secret:1');

    const { chromium } = await import('playwright-core');
    context = await chromium.launchPersistentContext(path.join(work, 'chromium-profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 860 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(15_000);
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (entry) => {
      // A refused API call is logged by the browser as a failed resource load: expected where the test provokes one.
      if (entry.type() === 'error' && !/Failed to load resource/.test(entry.text())) problems.push(`console: ${entry.text()}`);
    });
  });

  after(async () => {
    await context?.close();
    await server?.stop();
    await new Promise((resolve) => (receiver ? receiver.close(resolve) : resolve(undefined)));
    if (shots) console.log(`web interface screenshots: ${shots}`);
    // The screenshots stay; everything else of the temp folder goes.
    if (work) for (const entry of await fs.readdir(work)) if (entry !== 'screenshots') await fs.rm(path.join(work, entry), { recursive: true, force: true });
  });

  it('redirects / to the interface and serves it with a strict CSP and hashed, cached assets', async () => {
    const root = await fetch(`${server.url}/`, { redirect: 'manual' });
    assert.equal(root.status, 302);
    assert.equal(root.headers.get('location'), '/ui/');
    const html = await fetch(`${server.url}/ui/`);
    assert.match(html.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    assert.doesNotMatch(html.headers.get('content-security-policy') ?? '', /unsafe-inline/);
    const text = await html.text();
    assert.doesNotMatch(text, /<script>(?!<)/, 'no inline script');
    const script = /src="(\/ui\/assets\/app-[A-Z0-9]+\.js)"/.exec(text)?.[1];
    assert.ok(script, text);
    const asset = await fetch(`${server.url}${script}`);
    assert.equal(asset.status, 200);
    assert.match(asset.headers.get('cache-control') ?? '', /immutable/);
  });

  it('signs in with the keyboard and lists the repositories the account may pull', async () => {
    await goto('/');
    await page.getByRole('banner').getByRole('link', { name: 'Sign in' }).click();
    await page.getByLabel('User name').focus();
    await page.keyboard.type('admin');
    await page.keyboard.press('Tab');
    await page.keyboard.type(ADMIN_PASSWORD);
    await page.keyboard.press('Enter');
    await page.getByText('Signed in as').waitFor();
    const rows = page.locator('table tbody th');
    await rows.filter({ hasText: 'team/app' }).waitFor();
    assert.deepEqual(await rows.allTextContents(), ['other/secret', 'team/api', 'team/app']);
    await page.getByLabel('Search repositories').fill('team');
    await page.waitForFunction(() => (globalThis as any).document.querySelectorAll('table tbody tr').length === 2);
    await shot('repositories');
  });

  it('shows the tags skopeo pushed: digest, platform, size, pusher and pull commands', async () => {
    await page.getByRole('link', { name: 'team/app' }).click();
    const row = page.locator('tr[data-tag="1.0.0"]');
    await row.waitFor();
    assert.match(await row.innerText(), new RegExp(`${image10.manifestDigest.slice(0, 19)}[\\s\\S]*linux/amd64[\\s\\S]*KiB[\\s\\S]*admin`));
    await row.getByRole('button', { name: 'Pull commands for 1.0.0' }).click();
    assert.equal(await page.getByRole('textbox', { name: 'docker pull (tag 1.0.0)', exact: true }).inputValue(), `docker pull ${server.host}/team/app:1.0.0`);
    assert.equal(await page.getByRole('textbox', { name: 'podman pull (by digest)', exact: true }).inputValue(), `podman pull ${server.host}/team/app@${image10.manifestDigest}`);
    await page.getByLabel('Sort').selectOption('semver');
    await page.waitForFunction(() => (globalThis as any).document.querySelector('table.tags tbody tr')?.getAttribute('data-tag') === '1.1.0');
    await shot('tags');
  });

  it('opens an image: layers, config and HEALTHCHECK, history, raw manifest', async () => {
    await page.getByRole('link', { name: '1.0.0', exact: true }).click();
    await page.getByRole('heading', { name: 'Healthcheck' }).waitFor();
    const layers = page.locator('section[aria-labelledby="layers-title"] tbody tr');
    assert.equal(await layers.count(), 2);
    assert.match(await layers.first().innerText(), /application\/vnd\.oci\.image\.layer\.v1\.tar\+gzip[\s\S]*KiB/);
    const healthcheck = await page.locator('dl[aria-label="Healthcheck"]').innerText();
    assert.match(healthcheck, /wget -q -O- http:\/\/localhost:8080\/healthz \|\| exit 1/);
    assert.match(healthcheck, /Interval\s+30s[\s\S]*Timeout\s+5s[\s\S]*Start period\s+10s[\s\S]*Retries\s+3/);
    const config = await page.locator('section[aria-labelledby="config-title"]').innerText();
    for (const expected of ['["/bin/app"]', '["serve"]', '8080/tcp', '/srv/app', '2030-01-01 00:00:00 UTC', 'linux/amd64']) assert.ok(config.includes(expected), `${expected} in ${config}`);
    assert.match(await page.locator('section[aria-labelledby="env-title"]').innerText(), /APP_MODE=production/);
    assert.match(await page.locator('section[aria-labelledby="labels-title"]').innerText(), /demo app/);
    assert.match(await page.locator('section[aria-labelledby="history-title"]').innerText(), /COPY app \/bin\/app/);
    assert.match(await page.getByLabel('Raw manifest').innerText(), new RegExp(`"digest": "${image10.configDigest}"`));
    assert.match(await page.locator('dl.facts').first().innerText(), /1\.0\.0[\s\S]*latest/, 'the tags on the digest');
    await shot('image');
  });

  it('deletes a tag after a confirmation naming the other tags on its digest', async () => {
    await goto(`/ui/repository?name=team/app`);
    await page.locator('tr[data-tag="latest"]').getByRole('button', { name: 'Delete tag latest' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    assert.match(await dialog.innerText(), /stays, still tagged 1\.0\.0\./);
    await shot('delete-confirmation');
    await dialog.getByRole('button', { name: 'Delete tag' }).click();
    await page.getByText('Tag latest deleted.').waitFor();
    await page.locator('tr[data-tag="latest"]').waitFor({ state: 'detached' });
    const tags = await apiJson('/api/v1/repositories/team/app/_tags');
    assert.deepEqual((tags.body!.tags as Array<{ name: string }>).map((tag) => tag.name).sort(), ['1.0.0', '1.1.0'], 'the browsing API agrees');
    const token = (await apiJson('/auth/token?scope=repository:team/app:pull')).body!.token as string;
    const listed = await fetch(`${server.url}/v2/team/app/tags/list`, { headers: { Authorization: `Bearer ${token}` } }).then((res) => res.json());
    assert.deepEqual((listed as { tags: string[] }).tags.sort(), ['1.0.0', '1.1.0']);
  });

  it('creates a robot and shows its secret once', async () => {
    await page.getByRole('link', { name: 'Access' }).click();
    await page.getByText('New robot').click();
    const form = page.getByRole('form', { name: 'New robot' });
    await form.getByLabel('Name (logs in as robot+name)').fill('deployer');
    await form.getByLabel('Repository pattern').fill('team/**');
    await form.getByLabel('Expires in (90d, 12h or 30m; empty: never)').fill('30d');
    await form.getByRole('button', { name: 'Create robot' }).click();
    const secretField = page.getByRole('textbox', { name: 'Secret of robot+deployer' });
    await secretField.waitFor();
    const secret = await secretField.inputValue();
    assert.match(secret, /^\S{32,}$/);
    await shot('robot-secret');
    const login = await fetch(`${server.url}/v2/`, { headers: { Authorization: `Basic ${Buffer.from(`robot+deployer:${secret}`).toString('base64')}` } });
    assert.equal(login.status, 200, 'the secret shown logs the robot in');
    assert.match(await page.locator('tr[data-robot="deployer"]').innerText(), /active[\s\S]*in 30 days/);
    await page.reload();
    await page.locator('tr[data-robot="deployer"]').waitFor();
    assert.equal(await page.getByRole('textbox', { name: 'Secret of robot+deployer' }).count(), 0, 'never shown again');
    assert.ok(!(await page.content()).includes(secret));
  });

  it('pauses a webhook and shows its deliveries with attempts and the deploy results agents reported', async () => {
    // The five pushes into team/* were delivered before the pause.
    for (let i = 0; i < 100 && received < 4; i++) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.ok(received >= 4, `the receiver got ${received} deliveries`);
    await page.getByRole('link', { name: 'Webhooks' }).click();
    const row = page.locator('tr[data-subscription="deploy-hook"]');
    await row.getByRole('button', { name: 'Pause deploy-hook' }).click();
    await row.getByText('paused').waitFor();
    assert.equal((await apiJson('/api/v1/webhooks/deploy-hook')).body!.active, false);

    const deliveries = (await apiJson('/api/v1/webhooks/deploy-hook/deliveries?limit=50')).body!.deliveries as Array<{ id: number; eventId: string; payload: { tag: string | null } }>;
    const delivery = deliveries.find((entry) => entry.payload.tag === '1.0.0')!;
    assert.ok(delivery, JSON.stringify(deliveries));
    const detail = (await apiJson(`/api/v1/webhooks/deploy-hook/deliveries/${delivery.id}`)).body!;
    assert.equal(detail.deploy, null, 'no agent has reported yet');
    {
      // Contract 1: an agent reports a failed deploy, signed with the subscription's secret.
      const report = JSON.stringify({ agent: 'host-4', eventId: delivery.eventId, status: 'failed', attempt: 1, exitCode: 3, durationMs: 1200, output: 'exit 3', startedAt: new Date(Date.now() - 2000).toISOString(), finishedAt: new Date().toISOString(), sentAt: new Date().toISOString() });
      const signature = `sha256=${createHmac('sha256', subscription.secret).update(report).digest('hex')}`;
      const recorded = await fetch(`${server.url}/api/v1/webhooks/deploy-hook/deliveries/${delivery.id}/deploys`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Registry-Signature-256': signature }, body: report });
      assert.equal(recorded.status, 204);
    }
    await row.getByRole('button', { name: 'Deliveries of deploy-hook' }).click();
    await page.getByRole('button', { name: `Delivery ${delivery.id} details` }).click();
    const details = page.locator('section[aria-labelledby="delivery-title"]');
    await details.getByRole('table', { name: 'Attempts' }).locator('tbody tr').first().waitFor();
    assert.match(await details.innerText(), /tag\.created team\/app:1\.0\.0[\s\S]*delivered after 1 attempt[\s\S]*200/);
    assert.match(await details.locator('.deploy-result').innerText(), /failed[\s\S]*failed on host-4 \(exit 3\)/);
    assert.match(await details.getByRole('table', { name: 'Deploy reports' }).innerText(), /host-4[\s\S]*failed[\s\S]*3/);
    await shot('webhook-deliveries');
  });

  it('shows the release timeline: pushes, deletions and where each release was deployed', async () => {
    await goto('/ui/releases?repository=team/app');
    await page.locator('ol.timeline').waitFor();
    await page.getByText('1.0.0 pushed').first().waitFor();
    const timeline = await page.locator('ol.timeline').innerText();
    assert.match(timeline, /latest deleted[\s\S]*by admin/);
    assert.match(timeline, /failed on host-4 \(exit 3\)/, 'the deploy result the agent reported for 1.0.0');
    await shot('releases');
  });

  it('starts a garbage collection dry run from the storage page', async () => {
    await goto('/ui/storage');
    await page.getByRole('button', { name: 'Start a dry run' }).click();
    await page.getByText('Dry run finished: nothing was deleted.').waitFor();
    assert.match(await page.locator('section[aria-labelledby="gc-title"]').innerText(), /Scheduled every 24 h; next run in/);
    assert.match(await page.locator('section[aria-labelledby="usage-title"]').innerText(), /team\/app/);
    await shot('storage');
  });

  it('reads at 360 px and in dark mode', async () => {
    await page.setViewportSize({ width: 360, height: 740 });
    await page.emulateMedia({ colorScheme: 'dark' });
    await goto('/ui/repository?name=team/app');
    await page.locator('tr[data-tag="1.0.0"]').waitFor();
    const { overflow, widest } = await page.evaluate(() => {
      const document = (globalThis as any).document;
      const root = document.documentElement;
      const width = root.clientWidth as number;
      const wide = [...document.querySelectorAll('body *')].filter((element: any) => element.getBoundingClientRect().right > width + 1 && !element.closest('.table-wrap'));
      return { overflow: (root.scrollWidth - width) as number, widest: wide.slice(0, 5).map((element: any) => `${element.tagName}.${element.className}`) as string[] };
    });
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px (only tables may, inside their box): ${widest.join(', ')}`);
    const background = await page.evaluate(() => (globalThis as any).getComputedStyle((globalThis as any).document.body).backgroundColor as string);
    assert.equal(background, 'rgb(17, 20, 24)', 'dark colours follow the system setting');
    await shot('tags-360-dark');
    await page.setViewportSize({ width: 1280, height: 860 });
    await page.emulateMedia({ colorScheme: 'light' });
  });

  it('gives a pull-only account no admin pages and no delete, and the API answers it 403', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await goto('/ui/sign-in');
    await page.getByLabel('User name').fill('reader');
    await page.getByLabel('Password').fill(READER_PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('Signed in as').waitFor();
    await page.locator('table tbody th').filter({ hasText: 'team/app' }).waitFor();
    assert.deepEqual(await page.locator('table tbody th').allTextContents(), ['team/api', 'team/app'], 'only what its grant lets it pull');
    const nav = await page.getByRole('navigation', { name: 'Main' }).innerText();
    assert.doesNotMatch(nav, /Webhooks|Access|Storage/);
    await goto('/ui/repository?name=team/app');
    await page.locator('tr[data-tag="1.0.0"]').waitFor();
    assert.equal(await page.getByRole('button', { name: /^Delete/ }).count(), 0, 'no delete without the delete grant');
    await goto('/ui/access');
    await page.getByRole('heading', { name: 'Admins only' }).waitFor();
    await shot('pull-only-admin-page');
    // The browser tries anyway, with its own session: the admin API refuses it.
    const statuses = await page.evaluate(async () => {
      const stored = JSON.parse((globalThis as any).sessionStorage.getItem('registry-ui-session') ?? '{}') as { refreshToken: string };
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: stored.refreshToken, scope: 'registry:admin:*', client_id: 'registry-ui' });
      const { token } = (await (await fetch('/auth/token', { method: 'POST', body: form })).json()) as { token: string };
      const headers = { Authorization: `Bearer ${token}` };
      return Promise.all(['/api/v1/users', '/api/v1/webhooks', '/api/v1/usage'].map(async (url) => (await fetch(url, { headers })).status));
    });
    assert.deepEqual(statuses, [403, 403, 403]);
  });

  it('ran without script errors or CSP violations', () => {
    assert.deepEqual(problems, []);
  });
});
