/*
 * Direct upload through the attachments API, in three steps:
 *
 *   1. POST {owner, filename, size, checksum} to the uploads endpoint. If the
 *      clinic already holds these bytes for the owner's patient, the answer is
 *      the attachment itself: done, nothing to send. Otherwise it is a ticket.
 *   2. Send the bytes with the ticket's method, URL and headers: straight to
 *      the storage (a presigned URL), or to the API's own signed URL.
 *   3. POST the ticket's complete_url: the server checks the size, SHA-256 and
 *      type of what arrived, and only then makes the attachment.
 *
 * The SHA-256 is computed here, incrementally, one file.slice() at a time, so
 * memory stays at one chunk whatever the file's size. (crypto.subtle cannot
 * hash a stream, and is missing on plain-http origins other than localhost.)
 */
(function () {
  "use strict";

  const CHUNK_SIZE = 4 * 1024 * 1024;

  // -- SHA-256 (FIPS 180-4), fed any number of byte arrays ------------------

  const K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]);

  function rotr(x, n) {
    return (x >>> n) | (x << (32 - n));
  }

  class Sha256 {
    constructor() {
      this.state = new Uint32Array([
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
      ]);
      this.words = new Uint32Array(64);
      this.pending = new Uint8Array(64); // bytes waiting for a full 64-byte block
      this.pendingLength = 0;
      this.length = 0; // bytes hashed so far; exact up to 2^53
      this.finished = false;
    }

    /** Add bytes (a Uint8Array); returns this. */
    update(bytes) {
      if (this.finished) throw new Error("This SHA-256 is finished; start a new one.");
      this.length += bytes.length;
      let offset = 0;
      if (this.pendingLength > 0) {
        offset = Math.min(64 - this.pendingLength, bytes.length);
        this.pending.set(bytes.subarray(0, offset), this.pendingLength);
        this.pendingLength += offset;
        if (this.pendingLength < 64) return this;
        this.block(this.pending, 0);
        this.pendingLength = 0;
      }
      for (; offset + 64 <= bytes.length; offset += 64) this.block(bytes, offset);
      this.pending.set(bytes.subarray(offset), 0);
      this.pendingLength = bytes.length - offset;
      return this;
    }

    /** Finish: the digest as 64 lowercase hex digits. */
    hexdigest() {
      const bits = this.length * 8;
      // 0x80, zeros up to 56 bytes modulo 64, then the length in bits (64-bit big-endian).
      const padding = new Uint8Array((this.pendingLength < 56 ? 64 : 128) - this.pendingLength);
      padding[0] = 0x80;
      const view = new DataView(padding.buffer);
      view.setUint32(padding.length - 8, Math.floor(bits / 0x100000000));
      view.setUint32(padding.length - 4, bits >>> 0);
      this.update(padding);
      this.finished = true;
      return Array.from(this.state, (word) => word.toString(16).padStart(8, "0")).join("");
    }

    block(bytes, offset) {
      const w = this.words;
      for (let t = 0; t < 16; t++, offset += 4) {
        w[t] = (bytes[offset] << 24) | (bytes[offset + 1] << 16) | (bytes[offset + 2] << 8) | bytes[offset + 3];
      }
      for (let t = 16; t < 64; t++) {
        const x = w[t - 15];
        const y = w[t - 2];
        const s0 = rotr(x, 7) ^ rotr(x, 18) ^ (x >>> 3);
        const s1 = rotr(y, 17) ^ rotr(y, 19) ^ (y >>> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1; // a Uint32Array keeps it modulo 2^32
      }
      const s = this.state;
      let a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
      for (let t = 0; t < 64; t++) {
        const t1 = (h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t]) | 0;
        const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        h = g;
        g = f;
        f = e;
        e = (d + t1) | 0;
        d = c;
        c = b;
        b = a;
        a = (t1 + t2) | 0;
      }
      s[0] += a;
      s[1] += b;
      s[2] += c;
      s[3] += d;
      s[4] += e;
      s[5] += f;
      s[6] += g;
      s[7] += h;
    }
  }

  /** The SHA-256 of a Blob (or File), read chunkSize bytes at a time. */
  async function hashBlob(blob, { chunkSize = CHUNK_SIZE, onProgress = null } = {}) {
    const hash = new Sha256();
    for (let offset = 0; offset < blob.size; offset += chunkSize) {
      const chunk = await blob.slice(offset, offset + chunkSize).arrayBuffer();
      hash.update(new Uint8Array(chunk));
      if (onProgress) onProgress(Math.min(offset + chunkSize, blob.size), blob.size);
    }
    return hash.hexdigest();
  }

  window.directUpload = { Sha256, hashBlob, CHUNK_SIZE };

  // -- The page -------------------------------------------------------------

  const form = document.getElementById("direct-upload");
  if (!form) return;
  const statusBox = document.getElementById("status");
  const progress = document.getElementById("progress");
  const result = document.getElementById("result");
  const slotInput = form.elements.name;

  /** An error answer of the API (or of the storage): its code and message. */
  class UploadError extends Error {
    constructor(code, message) {
      super(message);
      this.code = code;
    }
  }

  function setStatus(state, text, fraction) {
    statusBox.dataset.state = state;
    statusBox.textContent = text;
    progress.hidden = state !== "working";
    if (fraction === undefined) progress.removeAttribute("value"); // indeterminate
    else progress.value = fraction;
  }

  function formatSize(bytes) {
    if (bytes < 1024) return `${bytes} bytes`;
    const units = ["KiB", "MiB", "GiB", "TiB"];
    let value = bytes;
    let unit = -1;
    do {
      value /= 1024;
      unit++;
    } while (value >= 1024 && unit < units.length - 1);
    return `${value.toFixed(1)} ${units[unit]} (${bytes} bytes)`;
  }

  function csrfToken() {
    const cookie = document.cookie.split("; ").find((item) => item.startsWith("csrftoken="));
    return cookie ? decodeURIComponent(cookie.slice("csrftoken=".length)) : form.elements.csrfmiddlewaretoken.value;
  }

  /** The code and message of a failed response: the API's JSON, or whatever else came back. */
  async function errorOf(response) {
    const text = await response.text();
    let body = null;
    try {
      body = JSON.parse(text);
    } catch (_) {
      // not JSON: e.g. a storage's XML error
    }
    if (body && typeof body === "object" && !Array.isArray(body)) {
      const fields = Object.entries(body)
        .filter(([key]) => key !== "code" && key !== "detail")
        .map(([key, value]) => `${key}: ${[].concat(value).join(" ")}`);
      const message = [body.detail, ...fields].filter(Boolean).join("; ");
      return new UploadError(body.code || `http_${response.status}`, message || response.statusText);
    }
    return new UploadError(`http_${response.status}`, text.slice(0, 300) || response.statusText);
  }

  async function send(url, init) {
    let response;
    try {
      response = await fetch(url, init);
    } catch (error) {
      throw new UploadError("network_error", `Could not reach ${new URL(url, location.href).origin}: ${error.message}`);
    }
    if (!response.ok) throw await errorOf(response);
    return response;
  }

  /** POST to the API (with the session's cookie and CSRF token), JSON in and out; no data, no body. */
  async function postJson(url, data) {
    const headers = { Accept: "application/json", "X-CSRFToken": csrfToken() };
    if (data !== undefined) headers["Content-Type"] = "application/json";
    const body = data === undefined ? undefined : JSON.stringify(data);
    const response = await send(url, { method: "POST", credentials: "same-origin", headers, body });
    return response.json();
  }

  function showResult(attachment, how) {
    setStatus("done", how);
    result.replaceChildren();
    const link = document.createElement("a");
    link.href = attachment.download_url;
    link.textContent = "Download";
    link.className = "download";
    const rows = [
      ["File", attachment.filename],
      ["Size", formatSize(attachment.size)],
      ["Type (sniffed)", attachment.content_type],
      ["SHA-256", attachment.checksum],
      ["Owner", `${attachment.owner_type} ${attachment.owner_id}${attachment.name ? ` [${attachment.name}]` : ""}`],
      ["Attachment", attachment.id],
      ["", link],
    ];
    for (const [term, value] of rows) {
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = term;
      dd.append(value);
      result.append(dt, dd);
    }
    result.hidden = false;
  }

  function showError(error) {
    const code = error instanceof UploadError ? error.code : "error";
    statusBox.dataset.state = "error";
    statusBox.replaceChildren("Failed: ");
    const codeElement = document.createElement("code");
    codeElement.textContent = code;
    statusBox.append(codeElement, ` — ${error.message}`);
    progress.hidden = true;
  }

  async function upload(file, ownerType, ownerId, slot) {
    result.hidden = true;
    setStatus("working", "Hashing… 0%", 0);
    const checksum = await hashBlob(file, {
      onProgress: (done, total) => setStatus("working", `Hashing… ${Math.floor((100 * done) / total)}%`, done / total),
    });

    setStatus("working", "Asking the API for an upload ticket…");
    const request = { owner_type: ownerType, owner_id: ownerId, filename: file.name, size: file.size, checksum };
    if (slot) request.name = slot;
    if (file.type) request.content_type = file.type;
    const started = await postJson(form.dataset.uploadsUrl, request);
    if (!started.upload) {
      showResult(started.attachment, "Already stored: the server knew these bytes, so no upload was needed.");
      return;
    }

    const ticket = started.upload;
    setStatus("working", `Uploading ${formatSize(file.size)} straight to the storage…`);
    const headers = {};
    for (const [key, value] of Object.entries(ticket.headers || {})) {
      if (key.toLowerCase() !== "content-length") headers[key] = value; // the browser sets it
    }
    await send(ticket.url, { method: ticket.method, headers, body: file });

    setStatus("working", "Verifying: the server checks the size, SHA-256 and type of what arrived…");
    const completed = await postJson(ticket.complete_url);
    showResult(completed.attachment, "Uploaded and verified.");
  }

  // Offer the owner type's slots; an owner type with a fixed set of slots needs one.
  form.elements.owner.addEventListener("change", () => {
    const slots = document.getElementById(`slots-${form.elements.owner.value.split(":")[0]}`);
    slotInput.setAttribute("list", slots ? slots.id : "");
    slotInput.required = Boolean(slots && slots.options.length);
    slotInput.placeholder = slotInput.required
      ? `required: ${Array.from(slots.options, (option) => option.value).join(", ")}`
      : "optional, e.g. xray";
  });
  form.elements.owner.dispatchEvent(new Event("change"));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = form.elements.file.files[0];
    const owner = form.elements.owner.value;
    const separator = owner.indexOf(":");
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await upload(file, owner.slice(0, separator), owner.slice(separator + 1), slotInput.value.trim());
    } catch (error) {
      showError(error);
    } finally {
      button.disabled = false;
    }
  });
})();
