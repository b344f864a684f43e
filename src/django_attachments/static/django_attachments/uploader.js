/**
 * Upload a file from the browser straight to the storage, through the attachments API's direct uploads.
 *
 * The server hands out *tickets* (``POST /api/attachments/uploads/``): a
 * small file goes in one signed ``PUT``, a large one in *parts* of a fixed
 * size, each signed, sent and checked by the storage on its own, so that a
 * lost part is sent again instead of the whole file, and an upload cut off
 * (a reload, a crash, a lost connection) carries on where it stopped. This
 * module does the client's side of both, with no dependency and no build
 * step::
 *
 *     import { Uploader, csrfFromCookie } from "/static/django_attachments/uploader.js";
 *
 *     const uploader = new Uploader(file, {
 *       ownerType: "patient", ownerId: "42", name: "xray", description: "Left side",
 *       headers: csrfFromCookie(),               // Django's CSRF token, for session authentication
 *     });
 *     uploader.addEventListener("progress", ({ detail }) => {
 *       bar.value = detail.sent / detail.total;   // detail: {phase, hashed, sent, verified, total}
 *     });
 *     const attachment = await uploader.start(); // the API's attachment; rejects an UploadError
 *     // uploader.abort() stops it, cancels the ticket and forgets it.
 *
 * What start() does:
 *
 * 1. **hash, start**: the API needs the whole file's SHA-256 to start a
 *    single-PUT ticket, and the uploader only learns from the ticket which
 *    kind it gets. So a file of at most ``singlePutMax`` bytes (64 MiB, the
 *    server's default threshold) is hashed first and declared with its
 *    SHA-256; a larger one is declared without (a server that still wants
 *    one says so, and gets it). If the server holds those bytes already,
 *    the attachment is made at once and nothing is sent.
 * 2. **send**: a single-PUT ticket gets the file in one ``PUT``. A multipart
 *    ticket gets its parts hashed in Web Workers (hashing.js), signed in
 *    batches and sent a few at once with retries (multipart.js).
 * 3. **complete**: ``POST complete_url``; while the server verifies the
 *    object (202), the same POST again after its Retry-After.
 *
 * **Resuming**: a multipart ticket is remembered in IndexedDB (resume.js)
 * under the file's name, size and lastModified and the owner and slot. An
 * uploader for the same file and target finds it, asks the server which
 * parts the storage holds (``GET parts_url``) and sends only the others;
 * a ticket that expired, failed or is gone is forgotten and the upload
 * starts over. The record is deleted once the upload is done or aborted.
 *
 * **Errors** reject start() (and fire "error") with an :class:`UploadError`:
 * ``code`` is the API's stable code (``file_too_large``, ``upload_expired``,
 * ``checksum_mismatch``...), an S3 error code, ``network_error`` or
 * ``aborted``; ``detail`` says it in a sentence; ``data`` is the answer's body.
 *
 * Events (it is an EventTarget): "progress" (a CustomEvent whose ``detail``
 * is ``{phase, hashed, sent, verified, total}``, byte counts; ``phase`` is
 * "hashing", "starting", "sending", "verifying", "done"), "done" (``detail``:
 * ``{attachment}``), "error" (``detail``: ``{error}``), "abort".
 */
import { HashPool } from "./hashing.js";
import {
  Api,
  UploadError,
  abortedError,
  backoff,
  csrfFromCookie,
  errorFromBody,
  putBytes,
  retryAfterMs,
  sleep,
} from "./http.js";
import { PartSender } from "./multipart.js";
import { ResumeStore, resumeKey } from "./resume.js";

export { UploadError, csrfFromCookie };

const MiB = 1024 * 1024;

/** Every option of an Uploader, with its default. */
export const DEFAULTS = Object.freeze({
  endpoint: "/api/attachments/uploads/", // the API's uploads collection
  headers: {}, // extra headers of the API calls (not of the PUTs): an object, or a function returning one
  credentials: "same-origin", // fetch's credentials for the API calls
  concurrency: 4, // parts in flight at once
  retries: 5, // more tries of a refused or lost part, and of a failed API call that is safe to repeat
  retryDelay: 500, // ms: the first backoff's bound, doubled at each try (with full jitter)
  maxRetryDelay: 20000, // ms: the backoff's cap
  chunkSize: 4 * MiB, // bytes read at a time to hash
  singlePutMax: 64 * MiB, // at most this many bytes: hashed before the start (see above)
  hashWorkers: null, // hashing workers; null: one per core beyond the page's, 1 to 4
  webCrypto: true, // hash with crypto.subtle where it exists...
  webCryptoMax: 32 * MiB, // ...for a part (or file) of at most this many bytes (it is held in memory)
  signBatch: 100, // parts signed per request (the API takes at most 100)
  resume: true, // remember multipart tickets in IndexedDB, and resume them
  database: undefined, // the IndexedDB database's name (resume.js's default)
});

const TARGET = ["ownerType", "ownerId", "name", "description"];

export class Uploader extends EventTarget {
  /**
   * `file`: a File (or Blob with a name). `options`: ownerType and ownerId (required), name (the slot)
   * and description, and any of DEFAULTS.
   */
  constructor(file, options = {}) {
    super();
    if (!file || typeof file.size !== "number") throw new TypeError("Uploader needs a File.");
    if (!options.ownerType || options.ownerId === undefined || options.ownerId === null || options.ownerId === "") {
      throw new TypeError("Uploader needs ownerType and ownerId.");
    }
    this.file = file;
    this.target = {
      ownerType: String(options.ownerType),
      ownerId: String(options.ownerId),
      name: options.name || "",
      description: options.description || "",
    };
    const rest = Object.fromEntries(Object.entries(options).filter(([key]) => !TARGET.includes(key)));
    const unknown = Object.keys(rest).filter((key) => !(key in DEFAULTS));
    if (unknown.length) throw new TypeError(`Unknown Uploader option(s): ${unknown.join(", ")}.`);
    this.options = { ...DEFAULTS, ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) };
    this.api = new Api(this.options);
    this.controller = new AbortController();
    this.store = this.options.resume ? new ResumeStore({ database: this.options.database }) : null;
    this.key = resumeKey(file, this.target);
    this.ticket = null; // the ticket being sent to, once there is one
    this.checksum = null; // the whole file's SHA-256, when it was computed
    this.running = null;
    this.counts = { phase: "idle", hashed: 0, sent: 0, verified: 0, total: file.size };
    this.hashedBy = new Map(); // part number (0: the whole file) -> bytes hashed
    this.inFlight = new Map(); // part number -> bytes of it sent so far
    this.resetCounts();
  }

  /** The latest progress: {phase, hashed, sent, verified, total}. */
  get progress() {
    return { ...this.counts };
  }

  /** Upload; resolves the attachment (the API's JSON). Calling it again returns the same promise. */
  start() {
    if (this.running === null) {
      this.running = this.run().then(
        (attachment) => {
          this.report("done", { verified: this.file.size });
          this.dispatchEvent(new CustomEvent("done", { detail: { attachment } }));
          return attachment;
        },
        (error) => {
          if (error.code !== "aborted") this.dispatchEvent(new CustomEvent("error", { detail: { error } }));
          throw error;
        },
      );
    }
    return this.running;
  }

  /** Stop: transfers end, the ticket is cancelled (DELETE) and forgotten. start()'s promise rejects "aborted". */
  async abort() {
    if (this.controller.signal.aborted) return;
    this.controller.abort();
    this.pool?.terminate();
    const ticket = this.ticket;
    if (ticket !== null && ticket.status === "pending") {
      try {
        await this.api.request("DELETE", this.ticketUrl(ticket.id));
      } catch (_) {
        // gone, already closed, or unreachable: it expires and the purge removes it
      }
    }
    await this.store?.delete(this.key);
    this.dispatchEvent(new Event("abort"));
  }

  // -- the flow --------------------------------------------------------------------------------

  async run() {
    const signal = this.controller.signal;
    this.pool = new HashPool({
      workers: this.options.hashWorkers ?? undefined,
      chunkSize: this.options.chunkSize,
      webCrypto: this.options.webCrypto,
      webCryptoMax: this.options.webCryptoMax,
    });
    try {
      await this.store?.prune(); // the records of uploads left for good, once their tickets expired
      const record = this.store ? await this.store.get(this.key) : null;
      if (record) {
        const attachment = await this.resume(record);
        if (attachment !== null) return attachment;
      }
      return await this.fresh();
    } catch (error) {
      if (signal.aborted) throw abortedError();
      throw error;
    } finally {
      this.pool.terminate();
    }
  }

  async fresh() {
    this.resetCounts();
    if (this.file.size <= this.options.singlePutMax) await this.hashWhole();
    let started;
    try {
      started = await this.startTicket();
    } catch (error) {
      // A server whose single-PUT threshold is above singlePutMax wants the checksum we did not send.
      if (this.checksum !== null || error.status !== 400 || !(error.data && "checksum" in error.data)) throw error;
      await this.hashWhole();
      started = await this.startTicket();
    }
    if (started.upload === null) return started.attachment; // the server held these bytes: attached
    this.ticket = started.upload;
    if (this.ticket.multipart) {
      const record = this.newRecord(this.ticket);
      await this.store?.put(record);
      return this.sendParts(record, []);
    }
    await this.singlePut(this.ticket);
    return this.complete();
  }

  /** Carry on with a remembered ticket; null when it cannot be (the caller starts over). */
  async resume(record) {
    this.report("starting");
    let ticket;
    try {
      ticket = (await this.api.request("GET", this.ticketUrl(record.ticketId), undefined, this.retrying())).data;
    } catch (error) {
      if (error.status !== 404) throw error;
      ticket = null;
    }
    const multipart = ticket && ticket.multipart;
    const open = ticket && ticket.status === "pending" && Date.parse(ticket.expires_at) > Date.now();
    if (ticket && (ticket.status === "completed" || ticket.status === "verifying")) {
      // Sent in full on an earlier page: completing again answers its attachment, or why it failed.
      this.ticket = ticket;
      this.checksum = record.checksum || null;
      this.accepted = this.file.size;
      let attachment;
      try {
        attachment = await this.complete();
      } catch (error) {
        if (!(error.status >= 400 && error.status < 500)) throw error;
        attachment = null; // failed when verified, or its attachment removed since: start over
      }
      await this.store?.delete(this.key);
      return attachment;
    }
    if (!open || !multipart || multipart.part_size !== record.partSize || ticket.size !== this.file.size) {
      if (open) await this.api.request("DELETE", this.ticketUrl(ticket.id)).catch(() => null);
      await this.store?.delete(this.key);
      return null;
    }
    this.ticket = ticket;
    this.checksum = record.checksum || null;
    const held = (await this.api.request("GET", multipart.parts_url, undefined, this.retrying())).data;
    return this.sendParts(record, held.parts || []);
  }

  /** Send what the storage does not hold, then complete; a completion that finds parts missing sends those. */
  async sendParts(record, held) {
    const { part_count: count } = this.ticket.multipart;
    const sender = new PartSender({
      file: this.file,
      ticket: this.ticket,
      api: this.api,
      pool: this.pool,
      options: this.options,
      record,
      save: () => this.store?.put(record),
      signal: this.controller.signal,
      progress: {
        hashed: (number, bytes) => this.hashed(number, bytes),
        sending: (number, bytes) => this.sending(number, bytes),
        accepted: (number) => this.acceptedPart(number),
      },
    });
    let holds = new Set(held.map((part) => part.number));
    for (let round = 0; ; round++) {
      const missing = [];
      for (let number = 1; number <= count; number++) {
        if (!holds.has(number)) missing.push(number);
      }
      this.resetCounts();
      for (const number of holds) this.acceptedPart(number, { held: true });
      this.report("sending");
      await sender.send(missing);
      let attachment;
      try {
        attachment = await this.complete();
      } catch (error) {
        if (error.code !== "parts_missing" || round >= 2) {
          // A refusal fails the ticket (checksum_mismatch, type_not_allowed...): nothing left to resume.
          if (error.status >= 400 && error.status < 500) await this.store?.delete(this.key);
          throw error;
        }
        const stillMissing = new Set((error.data && error.data.missing) || []);
        holds = new Set([...Array(count).keys()].map((i) => i + 1).filter((n) => !stillMissing.has(n)));
        continue;
      }
      await this.store?.delete(this.key);
      return attachment;
    }
  }

  async hashWhole() {
    this.report("hashing");
    const { checksum } = await this.pool.hash(this.file, (done) => this.hashed(0, done));
    this.checksum = checksum;
    this.hashed(0, this.file.size);
  }

  async startTicket() {
    this.report("starting");
    const { ownerType, ownerId, name, description } = this.target;
    const body = { owner_type: ownerType, owner_id: ownerId, filename: this.file.name, size: this.file.size };
    if (name) body.name = name;
    if (description) body.description = description;
    if (this.checksum !== null) body.checksum = this.checksum;
    if (this.file.type) body.content_type = this.file.type;
    // Not retried: a start whose answer was lost may have made a ticket; a second one would be another.
    const url = new URL(this.options.endpoint, location.href).href;
    return (await this.api.request("POST", url, body, { signal: this.controller.signal })).data;
  }

  async singlePut(ticket) {
    this.report("sending");
    const { retries, retryDelay, maxRetryDelay } = this.options;
    const signal = this.controller.signal;
    for (let attempt = 0; ; attempt++) {
      let answer = null;
      let error = null;
      try {
        answer = await putBytes(ticket.url, {
          method: ticket.method,
          headers: ticket.headers,
          body: this.file,
          onProgress: (loaded) => this.sending(1, loaded),
          signal,
        });
      } catch (thrown) {
        if (thrown.code === "aborted") throw thrown;
        error = thrown;
      }
      this.sending(1, 0);
      // 412 after a lost answer: the first PUT did land (the URL may not overwrite); completion checks it.
      if (answer && ((answer.status >= 200 && answer.status < 300) || (answer.status === 412 && attempt > 0))) {
        this.acceptedPart(1);
        return;
      }
      if (answer) error = errorFromBody(answer.status, answer.text);
      const transient = error.code === "network_error" || error.status === 400 || error.status >= 500;
      if (!transient || attempt >= retries) throw error;
      await sleep(backoff(attempt, { base: retryDelay, max: maxRetryDelay }), signal);
    }
  }

  /** POST complete_url until the server answers the attachment (202: verifying, ask again later). */
  async complete() {
    this.report("verifying");
    const body = this.checksum !== null ? { checksum: this.checksum } : {};
    const signal = this.controller.signal;
    for (;;) {
      const answer = await this.api.request("POST", this.ticket.complete_url, body, { retry: true, signal });
      if (answer.status !== 202) {
        this.ticket = answer.data.upload || this.ticket;
        return answer.data.attachment;
      }
      this.ticket = answer.data.upload || this.ticket;
      const wait = retryAfterMs(answer.headers.get("Retry-After")) ?? 1000;
      await sleep(Math.min(Math.max(wait, 250), 30000), signal);
    }
  }

  // -- helpers ---------------------------------------------------------------------------------

  ticketUrl(id) {
    return new URL(`${encodeURIComponent(id)}/`, new URL(this.options.endpoint, location.href)).href;
  }

  retrying() {
    return { retry: true, signal: this.controller.signal };
  }

  newRecord(ticket) {
    return {
      key: this.key,
      ticketId: ticket.id,
      filename: this.file.name,
      size: this.file.size,
      partSize: ticket.multipart.part_size,
      partCount: ticket.multipart.part_count,
      checksum: this.checksum,
      checksums: {},
      urls: {},
      expiresAt: ticket.expires_at,
    };
  }

  // -- progress --------------------------------------------------------------------------------

  resetCounts() {
    this.hashedBy.clear();
    this.inFlight.clear();
    this.hashedTotal = 0;
    this.inFlightTotal = 0;
    this.accepted = 0;
  }

  hashed(number, bytes) {
    this.hashedTotal += bytes - (this.hashedBy.get(number) || 0);
    this.hashedBy.set(number, bytes);
    this.report(null);
  }

  sending(number, bytes) {
    this.inFlightTotal += bytes - (this.inFlight.get(number) || 0);
    if (bytes) this.inFlight.set(number, bytes);
    else this.inFlight.delete(number);
    this.report(null);
  }

  /** Part `number` is in the storage: sent by us now, or `held` since an earlier page (hashed then). */
  acceptedPart(number, { held = false } = {}) {
    const partSize = this.ticket && this.ticket.multipart ? this.ticket.multipart.part_size : this.file.size;
    const bytes = Math.min(partSize, this.file.size - (number - 1) * partSize);
    this.accepted += bytes;
    this.sending(number, 0);
    if (held) this.hashed(number, bytes);
  }

  report(phase, counts = {}) {
    if (this.controller.signal.aborted) return;
    const hashed = Math.min(this.hashedTotal, this.file.size);
    Object.assign(this.counts, { hashed, sent: this.accepted + this.inFlightTotal, verified: this.accepted }, counts);
    if (phase !== null) this.counts.phase = phase;
    this.dispatchEvent(new CustomEvent("progress", { detail: this.progress }));
  }
}

/** Upload `file` with an Uploader (see its options); resolves the attachment. */
export function upload(file, options) {
  return new Uploader(file, options).start();
}
