/**
 * A pool of hashing Web Workers: the SHA-256 of several Blobs (parts of a file) at once, off the main thread.
 *
 * A multipart upload declares each part's SHA-256 before sending it, and the
 * storage refuses a part whose bytes do not match. Hashing is CPU work: done
 * on the page's main thread it would freeze the page for the whole file, so
 * the parts are hashed in workers (``hash-worker.js``), a few at once, while
 * earlier parts are already on their way::
 *
 *     import { HashPool } from "./hashing.js";
 *
 *     const pool = new HashPool({ workers: 3 });
 *     const { checksum, method } = await pool.hash(file.slice(0, partSize), (done, total) => ...);
 *     pool.terminate();
 *
 * Each worker uses WebCrypto where the context has it and the part is at
 * most ``webCryptoMax`` bytes (it must be held whole), and the incremental
 * SHA-256 of sha256.js otherwise. Where workers cannot start (a page whose
 * static files are on another origin without CORS, a Content-Security-Policy
 * that forbids them, a browser without module workers) the same hashing runs
 * on the main thread, one Blob at a time, so uploads still work, only less
 * smoothly.
 */
import { CHUNK_SIZE, digestBlob, webCryptoFor } from "./sha256.js";
import { abortedError } from "./http.js";

/** Workers by default: one per core beyond the page's own, at least 1, at most 4. */
export function defaultWorkers() {
  const cores = (globalThis.navigator && navigator.hardwareConcurrency) || 2;
  return Math.max(1, Math.min(4, cores - 1));
}

const WORKER_URL = new URL("./hash-worker.js", import.meta.url);

/** A module worker for `url`; through a same-origin blob: URL when `url` is on another origin. */
function startWorker(url) {
  if (typeof Worker === "undefined") return null;
  try {
    return new Worker(url, { type: "module" });
  } catch (_) {
    // A worker's script must be of the page's origin; a blob: URL is, and may import one that allows CORS.
    try {
      const source = new Blob([`import ${JSON.stringify(String(url))};`], { type: "text/javascript" });
      return new Worker(URL.createObjectURL(source), { type: "module" });
    } catch (_) {
      return null;
    }
  }
}

export class HashPool {
  constructor({
    workers = defaultWorkers(),
    chunkSize = CHUNK_SIZE,
    webCrypto = true,
    webCryptoMax = 32 * 1024 * 1024,
    workerUrl = WORKER_URL,
  } = {}) {
    this.size = Math.max(0, workers);
    this.options = { chunkSize, webCrypto, webCryptoMax };
    this.workerUrl = workerUrl;
    this.queue = []; // jobs waiting: {id, blob, onProgress, resolve, reject}
    this.idle = [];
    this.busy = new Map(); // worker -> its job
    this.workers = [];
    this.useWorkers = this.size > 0;
    this.mainThreadBusy = false;
    this.nextId = 1;
    this.closed = false;
  }

  /** The SHA-256 of `blob`: resolves {checksum, method ("webcrypto"/"js"), thread ("worker"/"main")}. */
  hash(blob, onProgress = null) {
    if (this.closed) return Promise.reject(abortedError());
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, blob, onProgress, resolve, reject });
      this.dispatch();
    });
  }

  /** Stop every worker; jobs not finished reject with code "aborted". */
  terminate() {
    this.closed = true;
    for (const worker of this.workers) worker.terminate();
    const pending = [...this.queue, ...this.busy.values()];
    this.queue = [];
    this.busy.clear();
    this.idle = [];
    this.workers = [];
    for (const job of pending) job.reject(abortedError());
  }

  dispatch() {
    while (this.queue.length && this.useWorkers) {
      let worker = this.idle.pop();
      if (!worker && this.workers.length < this.size) worker = this.spawn();
      if (!worker) break;
      const job = this.queue.shift();
      this.busy.set(worker, job);
      worker.postMessage({ id: job.id, blob: job.blob, ...this.options });
    }
    if (!this.useWorkers) this.runOnMainThread();
  }

  spawn() {
    const worker = startWorker(this.workerUrl);
    if (worker === null) {
      this.fallBack();
      return null;
    }
    this.workers.push(worker);
    worker.addEventListener("message", (event) => this.answer(worker, event.data));
    // A worker that fails to load (or dies) takes no more jobs: its job, and the rest, go to the main thread.
    const broken = () => {
      const job = this.busy.get(worker);
      this.busy.delete(worker);
      if (job) this.queue.unshift(job);
      this.fallBack();
    };
    worker.addEventListener("error", (event) => {
      event.preventDefault();
      broken();
    });
    worker.addEventListener("messageerror", broken);
    return worker;
  }

  answer(worker, message) {
    const job = this.busy.get(worker);
    if (!job || job.id !== message.id) return;
    if (message.done !== undefined) {
      if (job.onProgress) job.onProgress(message.done, job.blob.size);
      return;
    }
    this.busy.delete(worker);
    this.idle.push(worker);
    if (message.error !== undefined) job.reject(new Error(`Hashing failed: ${message.error}`));
    else job.resolve({ checksum: message.checksum, method: message.method, thread: "worker" });
    this.dispatch();
  }

  fallBack() {
    if (!this.useWorkers) return;
    this.useWorkers = false;
    for (const worker of this.workers) worker.terminate();
    for (const job of this.busy.values()) this.queue.push(job);
    this.busy.clear();
    this.idle = [];
    this.workers = [];
    this.dispatch();
  }

  async runOnMainThread() {
    if (this.mainThreadBusy) return;
    this.mainThreadBusy = true;
    try {
      while (this.queue.length && !this.closed) {
        const job = this.queue.shift();
        const method = webCryptoFor(job.blob.size, this.options) ? "webcrypto" : "js";
        try {
          const checksum = await digestBlob(job.blob, { ...this.options, onProgress: job.onProgress });
          job.resolve({ checksum, method, thread: "main" });
        } catch (error) {
          job.reject(error);
        }
      }
    } finally {
      this.mainThreadBusy = false;
    }
  }
}
