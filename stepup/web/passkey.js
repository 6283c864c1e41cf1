// Sotto's passkey page: shows the step-up challenge named by the URL
// fragment, runs navigator.credentials.get (WebAuthn Level 3, Section
// 5.1.4) on the user's click and posts the assertion with the challenge's
// CSRF token. It loads nothing from other origins.
"use strict";

function b64urlToBytes(s) {
  const pad = "=".repeat((4 - (s.length % 4)) % 4);
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + pad);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function bytesToB64url(buf) {
  const bytes = new Uint8Array(buf);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function show(id, text) {
  document.getElementById(id).textContent = text;
}

function status(text, kind) {
  const el = document.getElementById("status");
  el.textContent = text;
  el.className = kind || "";
}

function requestOptions(json) {
  const o = Object.assign({}, json);
  o.challenge = b64urlToBytes(json.challenge);
  if (json.allowCredentials) {
    o.allowCredentials = json.allowCredentials.map((c) => Object.assign({}, c, { id: b64urlToBytes(c.id) }));
  }
  return o;
}

function assertionJSON(cred) {
  const r = cred.response;
  return {
    id: cred.id,
    rawId: bytesToB64url(cred.rawId),
    type: cred.type,
    authenticatorAttachment: cred.authenticatorAttachment || undefined,
    clientExtensionResults: cred.getClientExtensionResults(),
    response: {
      clientDataJSON: bytesToB64url(r.clientDataJSON),
      authenticatorData: bytesToB64url(r.authenticatorData),
      signature: bytesToB64url(r.signature),
      userHandle: r.userHandle ? bytesToB64url(r.userHandle) : undefined,
    },
  };
}

async function approve(options) {
  const button = document.getElementById("approve");
  button.disabled = true;
  status("Follow your browser's prompt to use your passkey...");
  try {
    const cred = await navigator.credentials.get({ publicKey: requestOptions(options.publicKey) });
    const resp = await fetch(options.assertion_url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Sotto-CSRF": options.csrf_token },
      body: JSON.stringify(assertionJSON(cred)),
    });
    const body = await resp.json();
    if (!resp.ok) {
      status("Not approved: " + (body.error_description || body.error), "error");
      return;
    }
    status("Approved. You can close this page; the assistant continues on its own.", "done");
    document.body.dataset.result = "approved";
  } catch (e) {
    status("The passkey prompt failed or was cancelled: " + e.name + ". Reload the page to try again.", "error");
    button.disabled = false;
  }
}

async function load() {
  const id = decodeURIComponent(location.hash.slice(1));
  if (!id) {
    status("This page needs the link from your assistant, which names the request.", "error");
    return;
  }
  const resp = await fetch("passkey/challenges/" + encodeURIComponent(id) + "/options", { credentials: "same-origin" });
  const options = await resp.json();
  if (!resp.ok) {
    status("This request cannot be approved: " + (options.error_description || options.error), "error");
    return;
  }
  const c = options.challenge;
  show("text", c.text);
  show("action", c.description + " (" + c.action + ")");
  show("audience", c.audience);
  show("details", c.authorization_details ? JSON.stringify(c.authorization_details) : "none");
  show("client", c.client_id);
  show("device", c.device_jkt);
  show("expires", new Date(c.expires_at).toLocaleString());
  document.getElementById("request").hidden = false;
  status("Check the request below. Approve only if you asked your assistant for it.");
  document.getElementById("approve").addEventListener("click", () => approve(options));
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", () => {
  load().catch((e) => status("The request could not be loaded: " + e.message, "error"));
});
