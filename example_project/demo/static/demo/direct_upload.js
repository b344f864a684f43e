/*
 * Direct upload through the attachments API, with the app's packaged uploader
 * (django_attachments/uploader.js; the page's import map says where it is
 * served). The uploader does the three steps:
 *
 *   1. POST {owner, filename, size, checksum} to the uploads endpoint. If the
 *      clinic already holds these bytes for the owner's patient, the answer is
 *      the attachment itself: done, nothing to send. Otherwise it is a ticket.
 *   2. Send the bytes straight to the storage (a presigned URL, or the API's
 *      own signed URL): in one PUT, or, above the server's multipart
 *      threshold, in parts, several at once, each checked on arrival.
 *   3. POST the ticket's complete_url: the server checks the size, SHA-256 and
 *      type of what arrived, and only then makes the attachment.
 *
 * It hashes files a slice at a time (memory stays flat whatever the size),
 * reports progress, and remembers a multipart upload in IndexedDB, so that
 * picking the same file again after a reload carries on where it stopped.
 * This page shows the progress, offers Cancel, and shows the attachment.
 */
import { Uploader } from "django_attachments/uploader.js";

const form = document.getElementById("direct-upload");
if (form) setUp(form);

function setUp(form) {
  const statusBox = document.getElementById("status");
  const progress = document.getElementById("progress");
  const result = document.getElementById("result");
  const submit = form.querySelector("button[type=submit]");
  const cancel = document.getElementById("cancel");
  const slotInput = form.elements.name;
  let uploader = null;

  function setStatus(state, text, fraction) {
    statusBox.dataset.state = state;
    statusBox.textContent = text;
    progress.hidden = state !== "working";
    if (fraction === undefined) progress.removeAttribute("value"); // indeterminate
    else progress.value = fraction;
  }

  function csrfToken() {
    const cookie = document.cookie.split("; ").find((item) => item.startsWith("csrftoken="));
    return cookie ? decodeURIComponent(cookie.slice("csrftoken=".length)) : form.elements.csrfmiddlewaretoken.value;
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
    statusBox.dataset.state = "error";
    statusBox.replaceChildren("Failed: ");
    const codeElement = document.createElement("code");
    codeElement.textContent = error.code || "error";
    statusBox.append(codeElement, ` — ${error.detail || error.message}`);
    progress.hidden = true;
  }

  /** The status line for the uploader's progress: {phase, hashed, sent, verified, total}. */
  function showProgress({ phase, hashed, sent, total }, file) {
    const percent = (bytes) => (total ? Math.floor((100 * bytes) / total) : 100);
    if (phase === "hashing") setStatus("working", `Hashing… ${percent(hashed)}%`, total ? hashed / total : 1);
    else if (phase === "starting") setStatus("working", "Asking the API for an upload ticket…");
    else if (phase === "sending") {
      const how = uploader.ticket && uploader.ticket.multipart ? `in ${uploader.ticket.multipart.part_count} parts ` : "";
      const text = `Uploading ${formatSize(file.size)} ${how}straight to the storage… ${percent(sent)}%`;
      setStatus("working", text, total ? sent / total : 1);
    } else if (phase === "verifying") {
      setStatus("working", "Verifying: the server checks the size, SHA-256 and type of what arrived…");
    }
  }

  async function upload(file, ownerType, ownerId, slot) {
    result.hidden = true;
    uploader = new Uploader(file, {
      ownerType,
      ownerId,
      name: slot,
      endpoint: form.dataset.uploadsUrl,
      singlePutMax: Number(form.dataset.multipartThreshold),
      headers: () => ({ "X-CSRFToken": csrfToken() }),
    });
    let sent = false; // known bytes are attached at once: nothing is sent, nothing verified
    uploader.addEventListener("progress", ({ detail }) => {
      sent ||= detail.phase === "sending";
      showProgress(detail, file);
    });
    const attachment = await uploader.start();
    if (sent) showResult(attachment, "Uploaded and verified.");
    else showResult(attachment, "Already stored: the server knew these bytes, so no upload was needed.");
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

  let aborting = null; // abort()'s promise: settled once the ticket is cancelled
  cancel.addEventListener("click", () => {
    cancel.disabled = true;
    aborting = uploader?.abort() ?? null; // start() rejects "aborted" at once
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = form.elements.file.files[0];
    const owner = form.elements.owner.value;
    const separator = owner.indexOf(":");
    submit.disabled = true;
    aborting = null;
    cancel.disabled = false;
    cancel.hidden = false;
    try {
      await upload(file, owner.slice(0, separator), owner.slice(separator + 1), slotInput.value.trim());
    } catch (error) {
      if (error.code === "aborted") {
        setStatus("working", "Cancelling…");
        await aborting;
        setStatus("cancelled", "Cancelled: the ticket was cancelled, nothing was attached.");
      }
      else showError(error);
    } finally {
      submit.disabled = false;
      cancel.hidden = true;
    }
  });
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
