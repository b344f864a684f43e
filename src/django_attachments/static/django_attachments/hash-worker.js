/**
 * A Web Worker that hashes Blobs (parts of a file) with SHA-256, off the page's main thread.
 *
 * Started as a module worker by hashing.js::
 *
 *     new Worker(new URL("./hash-worker.js", import.meta.url), { type: "module" })
 *
 * Messages in: ``{id, blob, chunkSize, webCrypto, webCryptoMax}`` (the options of
 * ``digestBlob()`` in sha256.js). Messages out, for each job: any number of
 * ``{id, done}`` (bytes read so far), then ``{id, checksum, method}`` (64 hex
 * digits; ``"webcrypto"`` or ``"js"``) or ``{id, error}``. One job at a time:
 * the pool hands a worker its next job once it answered the last.
 */
import { digestBlob, webCryptoFor } from "./sha256.js";

self.addEventListener("message", async (event) => {
  const { id, blob, chunkSize, webCrypto, webCryptoMax } = event.data;
  try {
    const options = { chunkSize, webCrypto, webCryptoMax };
    const method = webCryptoFor(blob.size, options) ? "webcrypto" : "js";
    const checksum = await digestBlob(blob, { ...options, onProgress: (done) => self.postMessage({ id, done }) });
    self.postMessage({ id, checksum, method });
  } catch (error) {
    self.postMessage({ id, error: String((error && error.message) || error) });
  }
});
