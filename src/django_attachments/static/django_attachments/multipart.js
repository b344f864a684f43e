/**
 * Sending the parts of a multipart ticket: hash, sign in batches, PUT with bounded concurrency, retry.
 *
 * Three stages run at once, as a pipeline, so that the first part is on its
 * way while later ones are still being hashed:
 *
 * 1. **hash**: every part still to send is handed to the hashing pool
 *    (Web Workers); a part whose SHA-256 was declared before (a resumed
 *    upload) must hash to the same, or the file changed (``file_changed``);
 * 2. **sign**: hashed parts are signed by ``POST parts_url`` in batches of at
 *    most ``signBatch`` (100), when the senders are about to run dry, so
 *    that URLs are not signed long before use;
 * 3. **send**: ``concurrency`` senders PUT signed parts, each with exactly
 *    the method, URL and headers it was given. A part refused as corrupted
 *    (S3's 400 ``BadDigest``, the API's 400 ``checksum_mismatch`` or
 *    ``size_mismatch``), lost on the way or met by a busy server is sent
 *    again after an exponential backoff with jitter; a 403 (a signature
 *    that expired, or a length other than signed) is signed again first.
 *    A part gets ``retries`` more tries in all; then the upload fails.
 *
 * ::
 *
 *     const sender = new PartSender({ file, ticket, api, pool, options, record, save, progress });
 *     await sender.send([3, 4, 7]);      // every part the storage does not hold yet
 *
 * ``record`` is the upload's resume record (resume.js): the checksums and
 * URLs signed are written into it, and ``save()`` is called after each batch.
 * ``progress`` gets ``hashed(n, bytes)``, ``sending(n, bytes)`` and
 * ``accepted(n)`` calls, for the uploader's counters.
 */
import { UploadError, backoff, errorFromBody, putBytes, sleep } from "./http.js";

// Answers of a part's PUT after which sending it again cannot help: the ticket or the upload is gone.
const FATAL_CODES = new Set(["upload_expired", "upload_closed", "part_conflict", "NoSuchUpload", "not_found"]);

/** What to do after a part's PUT failed with `error`: "retry", "resign" (then retry) or "fatal". */
export function verdict(error) {
  if (error.code === "network_error") return "retry";
  if (FATAL_CODES.has(error.code)) return "fatal";
  const status = error.status;
  if (status === 403) return "resign";
  // 400: the body arrived other than signed (BadDigest, checksum_mismatch, size_mismatch, IncompleteBody).
  if (status === 400 || status === 408 || status === 429 || (status >= 500 && status !== 501)) return "retry";
  return "fatal";
}

/** Where part `number` (1-based) lies in a file of `size` bytes cut into parts of `partSize`. */
export function partRange(number, partSize, size) {
  const start = (number - 1) * partSize;
  return { start, end: Math.min(start + partSize, size) };
}

function pulse() {
  let resolve;
  const promise = new Promise((done) => (resolve = done));
  return { promise, resolve };
}

export class PartSender {
  constructor({ file, ticket, api, pool, options, record, save, progress, signal }) {
    this.file = file;
    this.partSize = ticket.multipart.part_size;
    this.partsUrl = ticket.multipart.parts_url;
    this.api = api;
    this.pool = pool;
    this.options = options;
    this.record = record;
    this.save = save;
    this.progress = progress;
    this.signal = signal;
    this.parts = new Map();
  }

  part(number) {
    let part = this.parts.get(number);
    if (!part) {
      const { start, end } = partRange(number, this.partSize, this.file.size);
      const target = this.record.urls[number] || null;
      // A URL remembered from an earlier page is checked for expiry before use; one signed now is tried.
      part = { number, start, end, checksum: this.record.checksums[number] || null, target, remembered: !!target };
      part.attempts = 0;
      this.parts.set(number, part);
    }
    return part;
  }

  /** Send parts `numbers`; resolves once the storage accepted each, rejects with the first fatal error. */
  async send(numbers) {
    const controller = new AbortController();
    const stop = () => controller.abort();
    if (this.signal) this.signal.addEventListener("abort", stop, { once: true });
    const signal = controller.signal;
    const { concurrency, signBatch } = this.options;
    const lowWater = concurrency * 2;
    const ready = [];
    const toSign = [];
    let remaining = numbers.length;
    let signing = false;
    let failure = null;
    let changed = pulse();
    const notify = () => {
      const was = changed;
      changed = pulse();
      was.resolve();
    };
    const fail = (error) => {
      if (failure === null) {
        failure = error;
        controller.abort(); // the other parts' transfers and waits
      }
      notify();
    };

    const pump = () => {
      if (failure !== null || signing || !toSign.length || ready.length >= lowWater) return;
      signing = true;
      const batch = toSign.splice(0, signBatch);
      const body = { parts: batch.map((number) => ({ number, checksum: this.part(number).checksum })) };
      this.api
        .request("POST", this.partsUrl, body, { retry: true, signal })
        .then(({ data }) => {
          const signed = new Map((data.parts || []).map((item) => [item.number, item]));
          for (const number of batch) {
            const item = signed.get(number);
            if (!item) throw new UploadError("bad_response", `The server signed no URL for part ${number}.`);
            const part = this.part(number);
            part.target = { method: item.method || "PUT", url: item.url, headers: item.headers || {} };
            part.target.expiresAt = data.expires_at || null;
            part.remembered = false;
            this.record.checksums[number] = part.checksum;
            this.record.urls[number] = part.target;
          }
          this.save();
          ready.push(...batch);
          signing = false;
          pump();
          notify();
        })
        .catch(fail);
    };

    for (const number of numbers) {
      const part = this.part(number);
      const blob = this.file.slice(part.start, part.end);
      this.pool
        .hash(blob, (done) => this.progress.hashed(number, done))
        .then(({ checksum }) => {
          if (failure !== null) return;
          if (part.checksum !== null && part.checksum !== checksum) {
            throw new UploadError(
              "file_changed",
              `Part ${number} of ${this.file.name} no longer has the SHA-256 declared for it: the file changed.`,
            );
          }
          part.checksum = checksum;
          this.progress.hashed(number, part.end - part.start);
          if (part.target !== null && !(part.remembered && expired(part.target))) ready.push(number);
          else toSign.push(number);
          pump();
          notify();
        })
        .catch(fail);
    }

    const sender = async () => {
      while (failure === null && remaining > 0) {
        if (!ready.length) {
          await changed.promise;
          continue;
        }
        const number = ready.shift();
        pump();
        let outcome;
        try {
          outcome = await this.sendPart(this.part(number), signal);
        } catch (error) {
          fail(error);
          break;
        }
        if (outcome === "accepted") {
          remaining--;
          if (remaining === 0) notify();
        } else {
          toSign.push(number);
          pump();
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.max(1, concurrency) }, sender));
    } finally {
      if (this.signal) this.signal.removeEventListener("abort", stop);
    }
    if (failure !== null) {
      // An abort from outside is the caller's; an inner abort only follows another part's failure.
      throw this.signal && this.signal.aborted ? new UploadError("aborted", "The upload was aborted.") : failure;
    }
  }

  /** PUT one part until the storage takes it: "accepted", or "resign" for a fresh URL first. */
  async sendPart(part, signal) {
    const { retries, retryDelay, maxRetryDelay } = this.options;
    for (;;) {
      if (part.remembered && expired(part.target)) return "resign";
      const { method, url, headers } = part.target;
      let error = null;
      try {
        const answer = await putBytes(url, {
          method,
          headers,
          body: this.file.slice(part.start, part.end),
          onProgress: (loaded) => this.progress.sending(part.number, loaded),
          signal,
        });
        if (answer.status >= 200 && answer.status < 300) {
          this.progress.accepted(part.number);
          return "accepted";
        }
        error = errorFromBody(answer.status, answer.text);
      } catch (thrown) {
        if (thrown.code === "aborted") throw thrown;
        error = thrown;
      } finally {
        this.progress.sending(part.number, 0);
      }
      const next = verdict(error);
      if (next === "fatal" || part.attempts >= retries) {
        const tries = part.attempts + 1;
        throw new UploadError(error.code, `Part ${part.number} (${tries} tries): ${error.detail}`, error);
      }
      await sleep(backoff(part.attempts, { base: retryDelay, max: maxRetryDelay }), signal);
      part.attempts++;
      if (next === "resign") return "resign";
    }
  }
}

// A remembered URL is not used in its last minute: a part takes time to send.
const EXPIRY_MARGIN_MS = 60 * 1000;

function expired(target) {
  const expires = Date.parse(target.expiresAt);
  return !Number.isNaN(expires) && expires - Date.now() < EXPIRY_MARGIN_MS;
}
