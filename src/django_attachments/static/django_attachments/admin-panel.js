/**
 * The admin attachments panel's drop zone: files go straight to the storage, each with a progress bar.
 *
 * Loaded by the panel (attachments_panel.html) only where it offers direct
 * uploads (see django_attachments.admin.dropzone), as a module beside the
 * packaged uploader. It reveals the drop zone the panel renders hidden, then:
 *
 * - files dropped anywhere on the panel, or picked with the zone's "choose
 *   files", are uploaded at once, to the slot and with the description the
 *   panel's form shows (its own file input and Upload button post to the
 *   admin as ever);
 * - each file gets a row: its name and size, a <progress> bar (hashing, then
 *   sending, then verifying), a Cancel button (Uploader.abort(): the ticket
 *   is cancelled, nothing is attached) and, on failure, the server's message;
 * - a large upload cut off (a reload, a lost connection) resumes when the
 *   same file is dropped again: the uploader remembers its ticket in
 *   IndexedDB and sends only the parts the storage lacks; the row says so;
 * - as each upload completes, the page is fetched again and the panel's list
 *   of files replaced by the new one (the rest of the page, and the uploads
 *   still running, are left as they are).
 *
 * The API calls go with the admin's session cookie and Django's CSRF token
 * (the cookie's, else the panel form's). Without this script (or a browser
 * without modules) the zone stays hidden and the form posts as ever.
 */
import { ResumeStore, resumeKey } from "./resume.js";
import { Uploader } from "./uploader.js";

/** Uploads running at once (each sends several parts at once). */
const RUNNING_AT_ONCE = 2;

const zone = document.querySelector("#attachments .attachments-dropzone[data-endpoint]");
if (zone !== null) setUp(zone);

function setUp(zone) {
  const panel = zone.closest("#attachments");
  const form = document.getElementById(zone.dataset.formId);
  const words = JSON.parse(document.getElementById("attachments-dropzone-messages").textContent);
  const list = zone.querySelector(".attachments-transfers");
  const slotField = form.elements.name;
  const descriptionField = form.elements.description;
  const store = new ResumeStore();
  const waiting = [];
  let running = 0;

  const options = {
    endpoint: zone.dataset.endpoint,
    singlePutMax: Number(zone.dataset.singlePutMax),
    headers: () => ({ [zone.dataset.csrfHeader]: csrfToken(zone.dataset.csrfCookie, form) }),
  };

  class Transfer {
    constructor(file, target) {
      this.file = file;
      this.target = target;
      this.uploader = null;
      this.cancelled = false;
      this.resuming = false;
      this.row = document.createElement("li");
      this.row.className = "attachments-transfer";
      const name = document.createElement("span");
      name.className = "attachments-transfer-name";
      name.textContent = `${file.name} (${formatSize(file.size)})`;
      this.bar = document.createElement("progress");
      this.bar.max = 1;
      this.bar.value = 0;
      this.status = document.createElement("span");
      this.status.className = "attachments-transfer-status";
      this.button = document.createElement("button");
      this.button.type = "button"; // the panel sits inside the change form: never submit it
      this.button.className = "button attachments-transfer-cancel";
      this.button.textContent = words.cancel;
      this.button.setAttribute("aria-label", words.cancelFile.replace("%(file)s", file.name));
      this.button.addEventListener("click", () => this.cancel());
      this.row.append(name, this.bar, this.status, this.button);
      this.setState("waiting", words.waiting);
    }

    setState(state, text) {
      this.row.dataset.state = state;
      this.status.textContent = this.resuming && state !== "done" ? `${text} (${words.resuming})` : text;
    }

    async run() {
      // A record of this file and target in IndexedDB: the uploader will carry on with its ticket.
      const record = await store.get(resumeKey(this.file, this.target));
      this.resuming = record !== null && !(Date.parse(record.expiresAt) <= Date.now());
      if (this.cancelled) return;
      this.uploader = new Uploader(this.file, { ...this.target, ...options });
      this.uploader.addEventListener("progress", ({ detail }) => this.progress(detail));
      try {
        await this.uploader.start();
      } catch (error) {
        if (error.code !== "aborted") this.fail(error); // aborted: cancel() says so once the ticket is cancelled
        return;
      }
      this.bar.value = 1;
      this.finish("done", words.done);
      refreshList();
    }

    progress({ phase, hashed, sent, total }) {
      if (this.cancelled) return;
      const fraction = (bytes) => (total > 0 ? bytes / total : 1);
      const percent = (bytes) => `${Math.floor(100 * fraction(bytes))}%`;
      if (phase === "hashing") {
        this.bar.value = fraction(hashed);
        this.setState(phase, `${words.hashing} ${percent(hashed)}`);
      } else if (phase === "sending") {
        this.bar.value = fraction(sent);
        this.setState(phase, `${words.sending} ${percent(sent)}`);
      } else if (phase === "starting") {
        this.setState(phase, `${words.starting}…`);
      } else if (phase === "verifying") {
        this.bar.removeAttribute("value"); // indeterminate: the server reads the file back
        this.setState(phase, `${words.verifying}…`);
      }
    }

    async cancel() {
      if (this.cancelled) return;
      this.cancelled = true;
      this.button.disabled = true;
      const queued = waiting.indexOf(this);
      if (queued >= 0) waiting.splice(queued, 1);
      if (this.uploader === null) {
        // Not started (waiting, or looking for a remembered upload): nothing to cancel on the server.
        this.finish("cancelled", words.cancelled);
        return;
      }
      this.setState("cancelling", `${words.cancelling}…`);
      await this.uploader.abort(); // settles once the ticket is cancelled (DELETE) and forgotten
      // Unless the upload was done before the abort could stop it: the file is attached then.
      if (this.row.dataset.state !== "done") this.finish("cancelled", words.cancelled);
    }

    fail(error) {
      this.row.dataset.code = error.code || "error";
      this.finish("error", `${words.failed}: ${error.detail || error.message}`);
      this.status.title = error.code || "";
    }

    finish(state, text) {
      this.bar.hidden = state !== "done";
      this.button.hidden = true;
      this.setState(state, text);
    }
  }

  function add(files) {
    const target = {
      ownerType: zone.dataset.ownerType,
      ownerId: zone.dataset.ownerId,
      name: slotField ? slotField.value : "",
      description: descriptionField ? descriptionField.value.trim() : "",
    };
    for (const file of files) {
      const transfer = new Transfer(file, target);
      list.append(transfer.row);
      waiting.push(transfer);
    }
    next();
  }

  function next() {
    while (running < RUNNING_AT_ONCE && waiting.length) {
      const transfer = waiting.shift();
      running++;
      transfer
        .run()
        .catch((error) => transfer.fail(error))
        .finally(() => {
          running--;
          next();
        });
    }
  }

  // The panel's list, fetched again after each upload (one fetch at a time; one more if asked meanwhile).
  let refreshing = null;
  let refreshAgain = false;
  function refreshList() {
    if (refreshing !== null) {
      refreshAgain = true;
      return;
    }
    refreshing = (async () => {
      do {
        refreshAgain = false;
        const response = await fetch(location.pathname + location.search, { credentials: "same-origin" });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = page.querySelector("#attachments .attachments-list");
        const current = panel.querySelector(".attachments-list");
        if (fresh === null || current === null) throw new Error("no list of attachments on the page");
        current.replaceWith(document.importNode(fresh, true));
      } while (refreshAgain);
    })()
      .then(() => zone.querySelector(".attachments-refresh-failed")?.remove())
      .catch(() => {
        if (zone.querySelector(".attachments-refresh-failed")) return;
        const note = document.createElement("p");
        note.className = "attachments-refresh-failed errornote";
        note.textContent = words.refreshFailed;
        zone.append(note);
      })
      .finally(() => {
        refreshing = null;
      });
  }

  // Files dropped on the panel (the zone lights up while they are dragged over it).
  const carriesFiles = (event) => Boolean(event.dataTransfer) && Array.from(event.dataTransfer.types).includes("Files");
  let depth = 0; // dragenter/dragleave fire for each child crossed
  panel.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth++;
    zone.classList.add("attachments-dragover");
  });
  panel.addEventListener("dragover", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault(); // else the browser opens the file, leaving the page and its uploads
    event.dataTransfer.dropEffect = "copy";
  });
  panel.addEventListener("dragleave", (event) => {
    if (!carriesFiles(event)) return;
    depth = Math.max(0, depth - 1);
    if (depth === 0) zone.classList.remove("attachments-dragover");
  });
  panel.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth = 0;
    zone.classList.remove("attachments-dragover");
    add(Array.from(event.dataTransfer.files));
  });

  // Files picked with the zone's own input (it has no name: the change form around it never posts it).
  const chooser = zone.querySelector("input[type=file]");
  chooser.addEventListener("change", () => {
    add(Array.from(chooser.files));
    chooser.value = "";
  });

  zone.hidden = false;
}

/** Django's CSRF token: its cookie's (fresh after a login in another tab), else the panel form's. */
function csrfToken(cookieName, form) {
  const prefix = `${cookieName}=`;
  const cookie = cookieName ? document.cookie.split("; ").find((item) => item.startsWith(prefix)) : undefined;
  if (cookie) return decodeURIComponent(cookie.slice(prefix.length));
  return form.elements.csrfmiddlewaretoken ? form.elements.csrfmiddlewaretoken.value : "";
}

/** As Django's filesizeformat, which the panel's list uses: 1024 bytes a KB. */
function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} bytes`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
