/*
 * A patient's gallery: each of their files by its thumbnail, opening its preview, through the attachments API.
 *
 *   1. GET the patient's attachments (the list URL is the page's, on #gallery). Each attachment's
 *      "variants" gives the URL of each thumbnail and preview the server can make of it; a file of
 *      which none can be made (a text file, a file not yet scanned or quarantined) has none, and its
 *      tile says so in words.
 *   2. GET each thumbnail's URL. 200: its bytes are the image. 202: a worker is making it (503 with
 *      Retry-After: it could not be made just now); ask again after the Retry-After seconds, until it
 *      is made. 404 (no_preview): the renderer refused the
 *      file; the tile says why. A redirect (a store's signed URL) is left to the <img> to follow.
 *   3. A click on a thumbnail opens its preview in a dialog, asked for the same way.
 *
 * Each tile says where it is in data-state: loading, waiting (202 seen), ready, none (no preview), error.
 */
(function () {
  "use strict";

  const ACCEPT = "image/*, application/json";
  // How long to keep asking for a variant a worker has not made yet: at most this many tries.
  const MAX_TRIES = 120;

  const gallery = document.getElementById("gallery");
  const status = document.getElementById("status");
  const dialog = document.getElementById("preview");
  const objectUrls = [];

  function say(text, state) {
    status.textContent = text;
    status.dataset.state = state;
  }

  function sleep(seconds) {
    return new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  }

  /** Seconds to wait as a 202's (or 503's) Retry-After says: 1 to 30, 2 when it says nothing usable. */
  function retryAfter(response) {
    const seconds = Number(response.headers.get("Retry-After"));
    return Number.isFinite(seconds) && seconds > 0 ? Math.min(Math.max(seconds, 1), 30) : 2;
  }

  class NoImage extends Error {}

  /**
   * The image at a variant's URL, as a URL an <img> can show; waits while the server answers 202
   * (onWaiting is called then). Throws NoImage with the server's words when there is none.
   */
  async function variantImage(url, onWaiting) {
    for (let tries = 0; tries < MAX_TRIES; tries++) {
      const response = await fetch(url, { credentials: "same-origin", redirect: "manual", headers: { Accept: ACCEPT } });
      if (response.type === "opaqueredirect") return url; // a signed URL on the store: the <img> follows it
      // 202: a worker is making it; 503 with Retry-After: it could not be made just now, and is retried.
      if (response.status === 202 || (response.status === 503 && response.headers.get("Retry-After"))) {
        if (onWaiting) onWaiting();
        await sleep(retryAfter(response));
        continue;
      }
      if (response.ok) {
        const objectUrl = URL.createObjectURL(await response.blob());
        objectUrls.push(objectUrl);
        return objectUrl;
      }
      let detail = "";
      try {
        detail = (await response.json()).detail || "";
      } catch (error) {
        // not JSON: the status says enough
      }
      throw new NoImage(detail || `No preview (HTTP ${response.status}).`);
    }
    throw new NoImage("The preview is still being made; reload the page in a while.");
  }

  /** Why a file has no variant at all, in a few words. */
  function whyNone(attachment) {
    if (attachment.scan === "infected") return "Quarantined: the malware scanner found a threat.";
    if (attachment.scan === "pending" || attachment.scan === "failed") return "No preview until the file is scanned.";
    return `No preview is made of ${attachment.content_type} files.`;
  }

  function tile(attachment) {
    const item = document.createElement("li");
    const figure = document.createElement("figure");
    figure.className = "tile";
    figure.dataset.attachmentId = attachment.id;
    figure.dataset.contentType = attachment.content_type;
    const placeholder = document.createElement("div");
    placeholder.className = "placeholder";
    const caption = document.createElement("figcaption");
    const name = attachment.filename;
    caption.textContent = name;
    const details = document.createElement("small");
    details.textContent = [attachment.name, attachment.content_type].filter(Boolean).join(" · ");
    caption.append(details);
    figure.append(placeholder, caption);
    item.append(figure);

    const variants = attachment.variants || {};
    const thumb = variants.thumb;
    const preview = variants.preview || thumb;
    if (!thumb) {
      figure.dataset.state = "none";
      placeholder.textContent = whyNone(attachment);
      return item;
    }
    figure.dataset.state = "loading";
    placeholder.textContent = "Loading…";
    variantImage(thumb.url, () => {
      figure.dataset.state = "waiting";
      placeholder.textContent = "The thumbnail is being made…";
    })
      .then((src) => {
        const link = document.createElement("a");
        link.className = "frame";
        link.href = preview.url;
        link.target = "_blank";
        link.rel = "noopener";
        link.title = `Preview of ${name}`;
        const image = document.createElement("img");
        image.className = "thumb";
        image.alt = `Thumbnail of ${name}`;
        image.addEventListener("load", () => (figure.dataset.state = "ready"), { once: true });
        image.addEventListener(
          "error",
          () => {
            figure.dataset.state = "error";
            link.replaceWith(placeholder);
            placeholder.textContent = "The thumbnail could not be shown.";
          },
          { once: true },
        );
        image.src = src;
        link.append(image);
        link.addEventListener("click", (event) => {
          if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return; // a new tab: the link
          event.preventDefault();
          openPreview(preview.url, name);
        });
        placeholder.replaceWith(link);
      })
      .catch((error) => {
        figure.dataset.state = error instanceof NoImage ? "none" : "error";
        placeholder.textContent = error instanceof NoImage ? error.message : "The thumbnail could not be loaded.";
      });
    return item;
  }

  // -- the preview, in a dialog -------------------------------------------------------------

  let shown = 0; // the preview the dialog is for: a late answer for an earlier one is dropped

  function openPreview(url, name) {
    const request = ++shown;
    const image = dialog.querySelector("img");
    const message = dialog.querySelector(".message");
    dialog.querySelector(".title").textContent = name;
    image.hidden = true;
    image.removeAttribute("src");
    message.hidden = false;
    message.textContent = "Loading the preview…";
    dialog.dataset.state = "loading";
    dialog.showModal();
    variantImage(url, () => {
      if (request === shown) message.textContent = "The preview is being made…";
    })
      .then((src) => {
        if (request !== shown) return;
        image.alt = `Preview of ${name}`;
        image.addEventListener("load", () => (dialog.dataset.state = "ready"), { once: true });
        image.src = src;
        image.hidden = false;
        message.hidden = true;
      })
      .catch((error) => {
        if (request !== shown) return;
        dialog.dataset.state = "none";
        message.textContent = error instanceof NoImage ? error.message : "The preview could not be loaded.";
      });
  }

  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) dialog.close(); // a click on the backdrop
  });

  // -- the list -------------------------------------------------------------------------------

  async function load() {
    const response = await fetch(gallery.dataset.attachmentsUrl, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (!response.ok) {
      say(`The files could not be listed (HTTP ${response.status}).`, "error");
      return;
    }
    const attachments = (await response.json()).results;
    gallery.replaceChildren(...attachments.map(tile));
    say(attachments.length ? `${attachments.length} file(s).` : "No files yet.", "done");
  }

  window.addEventListener("pagehide", () => objectUrls.forEach((url) => URL.revokeObjectURL(url)));
  load().catch(() => say("The files could not be listed.", "error"));
})();
