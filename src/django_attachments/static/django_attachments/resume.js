/**
 * Where a multipart upload is remembered across page loads: one IndexedDB record per file and target.
 *
 * A large upload outlives a tab now and then (a reload, a crash, a laptop
 * closed). To carry on instead of starting over, the uploader keeps what it
 * cannot learn again from the server: which ticket it was sending to, the
 * part size, the SHA-256 it declared for each part (fixed once signed: asking
 * with another is a ``part_conflict``) and the part URLs it was given. Which
 * parts the storage already holds it asks the server (``GET parts_url``).
 *
 * A record is found again by its key: the file's name, size and
 * lastModified (what a browser knows of a file picked again; the bytes are
 * checked part by part anyway) and the owner and slot it is for::
 *
 *     import { ResumeStore, resumeKey } from "./resume.js";
 *
 *     const store = new ResumeStore();
 *     const key = resumeKey(file, { ownerType: "patient", ownerId: "1", name: "xray" });
 *     await store.put({ key, ticketId, partSize, checksums: {}, urls: {}, expiresAt });
 *     await store.get(key);      // the record, or null
 *     await store.delete(key);
 *     await store.prune();       // drop records whose ticket has expired
 *
 * Where IndexedDB is missing or refuses (some private modes), every method
 * quietly does nothing and get() finds nothing: uploads still work, they only
 * start over after a reload.
 */

export const DATABASE = "django-attachments-uploads";
const STORE = "uploads";

/** The key of a file's record: its name, size and lastModified, and the owner and slot it is uploaded to. */
export function resumeKey(file, { ownerType, ownerId, name = "" }) {
  return JSON.stringify([file.name, file.size, file.lastModified, String(ownerType), String(ownerId), name || ""]);
}

function promised(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

export class ResumeStore {
  constructor({ database = DATABASE } = {}) {
    this.database = database;
    this.opening = null;
  }

  /** The database, opened once; null where IndexedDB cannot be used. */
  open() {
    if (this.opening === null) {
      this.opening = new Promise((resolve) => {
        if (typeof indexedDB === "undefined") return resolve(null);
        let request;
        try {
          request = indexedDB.open(this.database, 1);
        } catch (_) {
          return resolve(null);
        }
        request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: "key" });
        request.onsuccess = () => {
          const db = request.result;
          // Another tab upgrading the database (a later version of this module) must not wait on us.
          db.onversionchange = () => db.close();
          resolve(db);
        };
        request.onerror = () => resolve(null);
        request.onblocked = () => resolve(null);
      });
    }
    return this.opening;
  }

  async run(mode, action, fallback) {
    const db = await this.open();
    if (db === null) return fallback;
    try {
      const transaction = db.transaction(STORE, mode);
      const committed = new Promise((resolve, reject) => {
        transaction.oncomplete = resolve;
        transaction.onerror = () => reject(transaction.error);
        transaction.onabort = () => reject(transaction.error);
      });
      const [result] = await Promise.all([promised(action(transaction.objectStore(STORE))), committed]);
      return result === undefined ? fallback : result;
    } catch (_) {
      return fallback; // a full disk or a closed database: the upload goes on, unremembered
    }
  }

  /** The record stored under `key`, or null. */
  get(key) {
    return this.run("readonly", (store) => store.get(key), null);
  }

  /** Store `record` (an object with a `key`), replacing any record under that key. */
  async put(record) {
    await this.run("readwrite", (store) => store.put({ ...record, savedAt: Date.now() }), null);
  }

  async delete(key) {
    await this.run("readwrite", (store) => store.delete(key), null);
  }

  /** Every record (for a page that lists unfinished uploads). */
  all() {
    return this.run("readonly", (store) => store.getAll(), []);
  }

  /** Delete the records whose ticket expired (`expiresAt`, an ISO date, in the past); returns how many. */
  async prune(now = Date.now()) {
    let removed = 0;
    for (const record of await this.all()) {
      const expires = Date.parse(record.expiresAt);
      if (!Number.isNaN(expires) && expires <= now) {
        await this.delete(record.key);
        removed++;
      }
    }
    return removed;
  }
}
