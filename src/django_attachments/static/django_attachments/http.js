/**
 * The uploader's HTTP: JSON calls to the attachments API, PUTs of bytes to the storage, retries.
 *
 * Two kinds of requests, kept apart on purpose:
 *
 * - calls to the API (start, sign parts, list parts, complete, abort) go with
 *   ``fetch``, the page's credentials (``credentials``, "same-origin" by
 *   default) and the caller's extra headers (the CSRF token of a session);
 * - bytes go to the URL a ticket handed out, with exactly its method and
 *   headers, no credentials and none of the caller's headers (the URL is
 *   signed, and may be another origin: a bucket's). They go with
 *   ``XMLHttpRequest``, the only browser API that reports upload progress.
 *
 * Every failure is an :class:`UploadError` with a stable ``code``: the API's
 * own (``checksum_mismatch``, ``upload_expired``, ...), an S3 error code
 * (``BadDigest``, ``AccessDenied``, ...), ``http_<status>`` for an answer
 * that names none, ``network_error`` when nothing came back, ``aborted``.
 *
 *     const api = new Api({ headers: csrfFromCookie(), credentials: "same-origin", retries: 5 });
 *     const { status, data, headers } = await api.request("POST", url, { parts: [...] }, { retry: true });
 *     const { status } = await putBytes(url, { method: "PUT", headers, body: blob, onProgress });
 */

/** An error of an upload: `code` (stable), `detail` (a sentence), `status` (HTTP, 0 if none), `data` (the body). */
export class UploadError extends Error {
  constructor(code, detail, { status = 0, data = null } = {}) {
    super(detail || code);
    this.name = "UploadError";
    this.code = code;
    this.detail = detail || code;
    this.status = status;
    this.data = data;
  }
}

/** The error of an answer: the API's JSON ({detail, code, field: [...]}), an S3 XML error, or its status. */
export function errorFromBody(status, text, statusText = "") {
  let data = null;
  try {
    data = JSON.parse(text);
  } catch (_) {
    // not JSON: a storage's XML error, an HTML page of a proxy, nothing
  }
  if (data && typeof data === "object" && !Array.isArray(data)) {
    const fields = Object.entries(data)
      .filter(([key]) => key !== "code" && key !== "detail")
      .map(([key, value]) => `${key}: ${[].concat(value).join(" ")}`);
    const detail = [data.detail, ...fields].filter(Boolean).join("; ");
    return new UploadError(data.code || `http_${status}`, detail || statusText, { status, data });
  }
  const xmlCode = /<Code>([^<]*)<\/Code>/.exec(text || "");
  const xmlMessage = /<Message>([^<]*)<\/Message>/.exec(text || "");
  if (xmlCode) return new UploadError(xmlCode[1], xmlMessage ? xmlMessage[1] : xmlCode[1], { status, data: text });
  return new UploadError(`http_${status}`, (text || "").slice(0, 300) || statusText || `HTTP ${status}`, {
    status,
    data: text || null,
  });
}

export function abortedError() {
  return new UploadError("aborted", "The upload was aborted.");
}

/** Wait `ms` milliseconds, or reject with `aborted` as soon as `signal` aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal && signal.aborted) return reject(abortedError());
    const timer = setTimeout(done, ms);
    function done() {
      if (signal) signal.removeEventListener("abort", stop);
      resolve();
    }
    function stop() {
      clearTimeout(timer);
      reject(abortedError());
    }
    if (signal) signal.addEventListener("abort", stop, { once: true });
  });
}

/**
 * How long to wait before attempt `attempt + 1` (attempt counts from 0): exponential, capped, with full
 * jitter, so that many clients refused at once do not come back at once.
 */
export function backoff(attempt, { base = 500, max = 20000 } = {}) {
  return Math.random() * Math.min(max, base * 2 ** attempt);
}

/** Seconds of a Retry-After header (delay-seconds or an HTTP date) in ms, or null. */
export function retryAfterMs(value) {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
}

/** Worth trying again as it is: nothing came back, the server was busy or broken. */
export function isTransient(error) {
  const status = error.status;
  return error.code === "network_error" || status === 408 || status === 429 || (status >= 500 && status !== 501);
}

/** Calls to the attachments API: JSON in and out, the caller's headers and credentials, optional retries. */
export class Api {
  constructor({ headers = {}, credentials = "same-origin", retries = 5, retryDelay = 500, maxRetryDelay = 20000 } = {}) {
    this.headers = headers;
    this.credentials = credentials;
    this.retries = retries;
    this.delays = { base: retryDelay, max: maxRetryDelay };
  }

  async extraHeaders() {
    const extra = typeof this.headers === "function" ? await this.headers() : this.headers;
    return extra || {};
  }

  /**
   * One call; resolves {status, data, headers} for a 2xx, rejects an UploadError otherwise. With `retry`,
   * a transient failure is tried again (for calls that are safe to repeat: all but the start).
   */
  async request(method, url, body, { retry = false, signal = null } = {}) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.once(method, url, body, signal);
      } catch (error) {
        if (error.code === "aborted" || !retry || attempt >= this.retries || !isTransient(error)) throw error;
        const wait = retryAfterMs(error.retryAfter) ?? backoff(attempt, this.delays);
        await sleep(wait, signal);
      }
    }
  }

  async once(method, url, body, signal) {
    const headers = { Accept: "application/json", ...(await this.extraHeaders()) };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        credentials: this.credentials,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (error) {
      if (signal && signal.aborted) throw abortedError();
      throw new UploadError("network_error", `Could not reach ${new URL(url, location.href).origin}: ${error.message}`);
    }
    const text = await response.text();
    if (!response.ok) {
      const error = errorFromBody(response.status, text, response.statusText);
      error.retryAfter = response.headers.get("Retry-After");
      throw error;
    }
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        throw new UploadError("bad_response", `Expected JSON from ${url}, got: ${text.slice(0, 200)}`, {
          status: response.status,
        });
      }
    }
    return { status: response.status, data, headers: response.headers };
  }
}

// Headers a script may not set (the browser does); a ticket's Content-Length is the body's own length.
const FORBIDDEN_HEADERS = new Set(["content-length", "host", "connection", "expect", "transfer-encoding"]);

/**
 * Send `body` (a Blob) to a ticket's URL with its method and headers. Resolves {status, text} whatever the
 * HTTP status; rejects UploadError "network_error" when no answer came (a cut network, a refused CORS
 * request) and "aborted" when `signal` aborts. onProgress(loaded) follows the bytes as they go.
 */
export function putBytes(url, { method = "PUT", headers = {}, body, onProgress = null, signal = null }) {
  return new Promise((resolve, reject) => {
    if (signal && signal.aborted) return reject(abortedError());
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    for (const [key, value] of Object.entries(headers || {})) {
      if (!FORBIDDEN_HEADERS.has(key.toLowerCase())) xhr.setRequestHeader(key, value);
    }
    if (onProgress) xhr.upload.addEventListener("progress", (event) => onProgress(event.loaded));
    const stop = () => xhr.abort();
    if (signal) signal.addEventListener("abort", stop, { once: true });
    const settle = (callback) => {
      if (signal) signal.removeEventListener("abort", stop);
      callback();
    };
    xhr.addEventListener("load", () => settle(() => resolve({ status: xhr.status, text: xhr.responseText })));
    xhr.addEventListener("error", () =>
      settle(() => reject(new UploadError("network_error", `No answer from ${new URL(url, location.href).origin}.`))),
    );
    xhr.addEventListener("timeout", () => settle(() => reject(new UploadError("network_error", "Timed out."))));
    xhr.addEventListener("abort", () => settle(() => reject(abortedError())));
    xhr.send(body);
  });
}

/**
 * Extra headers for Django's CSRF check, read from its cookie at each call (it can change on login):
 * ``new Uploader(file, { ..., headers: csrfFromCookie() })``.
 */
export function csrfFromCookie(cookieName = "csrftoken", headerName = "X-CSRFToken") {
  return () => {
    const prefix = `${cookieName}=`;
    const cookie = document.cookie.split("; ").find((item) => item.startsWith(prefix));
    return cookie ? { [headerName]: decodeURIComponent(cookie.slice(prefix.length)) } : {};
  };
}
