// Registers a passkey and approves a Sotto step-up challenge in headless
// Chromium, with a CDP virtual authenticator standing in for the user's
// platform authenticator. The Go test in authz starts Sotto and passes:
//   SOTTO_PASSKEY_URL        the challenge's passkey_url (page and fragment)
//   SOTTO_REGISTRATIONS_URL  the registration options endpoint
//   SOTTO_PASSKEYS_URL       the registration endpoint
//   SOTTO_ID_TOKEN           the user's corporate ID token
//   SOTTO_CHROMIUM           the Chromium executable (default /usr/bin/chromium)
// It prints one JSON line of results and exits 0 when the page approved.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

function env(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`missing environment variable ${name}`);
    process.exit(2);
  }
  return v;
}

const passkeyURL = env("SOTTO_PASSKEY_URL");
const registrationsURL = env("SOTTO_REGISTRATIONS_URL");
const passkeysURL = env("SOTTO_PASSKEYS_URL");
const idToken = env("SOTTO_ID_TOKEN");
const executablePath = process.env.SOTTO_CHROMIUM || "/usr/bin/chromium";

const profile = mkdtempSync(join(tmpdir(), "sotto-chromium-"));
// The flags keep Chromium from any connection beyond the loopback server.
const args = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

const result = { registered: false, approved: false, status: "", consoleErrors: [] };
let context;
try {
  // launchPersistentContext passes the fresh profile as --user-data-dir.
  context = await chromium.launchPersistentContext(profile, { executablePath, headless: true, args });
  const page = context.pages()[0] || (await context.newPage());
  page.on("console", (msg) => {
    if (msg.type() === "error") result.consoleErrors.push(msg.text());
  });

  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });

  await page.goto(passkeyURL);
  await page.waitForSelector("body[data-ready=true]", { timeout: 15000 });
  result.text = await page.textContent("#text");

  // Registration from the page's own origin, as a settings page would.
  const reg = await page.evaluate(
    async ({ registrationsURL, passkeysURL, idToken }) => {
      const dec = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4)), (c) => c.charCodeAt(0));
      const enc = (b) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
      const auth = { Authorization: "Bearer " + idToken, "Content-Type": "application/json" };
      const optResp = await fetch(registrationsURL, { method: "POST", headers: auth, body: "{}" });
      const opts = await optResp.json();
      if (!optResp.ok) return { status: optResp.status, body: opts };
      const pk = opts.publicKey;
      pk.challenge = dec(pk.challenge);
      pk.user.id = dec(pk.user.id);
      pk.excludeCredentials = (pk.excludeCredentials || []).map((c) => ({ ...c, id: dec(c.id) }));
      const cred = await navigator.credentials.create({ publicKey: pk });
      const body = {
        state: opts.state,
        name: "Headless Chromium",
        credential: {
          id: cred.id,
          rawId: enc(cred.rawId),
          type: cred.type,
          clientExtensionResults: cred.getClientExtensionResults(),
          response: {
            clientDataJSON: enc(cred.response.clientDataJSON),
            attestationObject: enc(cred.response.attestationObject),
            transports: cred.response.getTransports ? cred.response.getTransports() : [],
          },
        },
      };
      const resp = await fetch(passkeysURL, { method: "POST", headers: auth, body: JSON.stringify(body) });
      return { status: resp.status, body: await resp.json() };
    },
    { registrationsURL, passkeysURL, idToken },
  );
  result.registration = reg;
  result.registered = reg.status === 201;
  if (!result.registered) throw new Error("registration failed with HTTP " + reg.status);

  await page.click("#approve");
  await page.waitForFunction(
    () => document.body.dataset.result === "approved" || document.getElementById("status").className === "error",
    null,
    { timeout: 15000 },
  );
  result.status = await page.textContent("#status");
  result.approved = (await page.getAttribute("body", "data-result")) === "approved";
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  result.signCount = credentials.length ? credentials[0].signCount : -1;
} catch (e) {
  result.error = String(e && e.message ? e.message : e);
} finally {
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
}

console.log(JSON.stringify(result));
process.exit(result.approved ? 0 : 1);
