// Upload page: picker, drag and drop and paste; each file is checked here the way the server checks it, then sent
// on its own request so it gets its own progress bar, its own error message and its own live result.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  if (!form || !window.FormData || !window.XMLHttpRequest) return;

  const input = form.querySelector('input[type="file"]');
  const dropzone = document.getElementById("dropzone");
  const list = document.getElementById("upload-list");
  const heading = document.getElementById("uploads-heading");
  const maxBytes = Number(form.dataset.maxBytes);
  const maxMb = form.dataset.maxMb;
  const maxVideoBytes = Number(form.dataset.maxVideoBytes);
  const maxVideoMb = form.dataset.maxVideoMb;
  const videoTypes = form.dataset.videoTypes.split(",");
  const videoExtensions = form.dataset.videoExtensions.split(",");
  const acceptedTypes = form.dataset.acceptTypes.split(",");
  const acceptedExtensions = form.dataset.acceptExtensions.split(",");
  const description = form.dataset.acceptDescription;
  const videoDescription = form.dataset.videoDescription;
  const PARALLEL = 2;
  const waiting = [];
  let sending = 0;
  let pasted = 0;

  form.classList.add("enhanced");

  function megabytes(size) {
    return (size / (1024 * 1024)).toFixed(1) + " MB";
  }

  function readableSize(size) {
    if (size < 1024) return size + " bytes";
    if (size < 1024 * 1024) return (size / 1024).toFixed(1) + " KB";
    return megabytes(size);
  }

  // The same rules, in the same words, as detection.services (image_inspect, video_inspect). The server decides
  // by content; this only spares a long upload that would be refused.
  function problemWith(file) {
    const name = "\u201c" + file.name + "\u201d";
    if (file.size === 0) return name + " is empty (0 bytes).";
    const dot = file.name.lastIndexOf(".");
    const extension = dot >= 0 ? file.name.slice(dot).toLowerCase() : "";
    const video = file.type ? videoTypes.includes(file.type) : videoExtensions.includes(extension);
    if (video && file.size > maxVideoBytes) {
      return name + " is " + megabytes(file.size) + "; videos up to " + maxVideoMb + " MB are accepted.";
    }
    if (!video && file.size > maxBytes) {
      return name + " is " + megabytes(file.size) + "; images up to " + maxMb + " MB are accepted.";
    }
    const known = file.type ? acceptedTypes.includes(file.type) : acceptedExtensions.includes(extension);
    if (!video && !known) {
      return name + " is neither an image (" + description + ") nor a video (" + videoDescription + ").";
    }
    return null;
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function placeholder(file) {
    const item = element("li", "upload-item");
    const head = element("div", "upload-item-head");
    head.append(element("span", "upload-name", file.name), element("span", "muted small", readableSize(file.size)));
    item.append(head);
    list.append(item);
    heading.hidden = false;
    return item;
  }

  function fail(item, message) {
    item.classList.add("upload-item-error");
    item.querySelectorAll(".upload-progress").forEach((node) => node.remove());
    const error = element("p", "field-error", message);
    error.setAttribute("role", "alert");
    item.append(error);
  }

  function addProgress(item) {
    const row = element("div", "upload-progress");
    const bar = element("progress");
    bar.max = 100;
    bar.value = 0;
    const label = element("span", "small", "Waiting to upload…");
    label.setAttribute("aria-live", "polite");
    bar.setAttribute("aria-label", "Upload progress");
    row.append(bar, label);
    item.append(row);
    return { bar, label };
  }

  // The server answers with the finished list item (its result polls by itself) or with the reason it was refused.
  function replaceWithAnswer(item, html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    const answer = template.content.querySelector("[data-upload-outcome]");
    if (!answer) return false;
    item.replaceWith(answer);
    htmx.process(answer);
    return true;
  }

  function send(job) {
    sending += 1;
    const { file, item, progress } = job;
    const data = new FormData();
    data.append("csrfmiddlewaretoken", form.querySelector("[name=csrfmiddlewaretoken]").value);
    const keep = form.querySelector("[name=keep_original]");
    if (keep && keep.checked) data.append("keep_original", "on");
    data.append("files", file, file.name);

    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader("HX-Request", "true");
    progress.label.textContent = "Uploading…";
    request.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      const percent = Math.round((event.loaded / event.total) * 100);
      progress.bar.value = percent;
      progress.label.textContent = "Uploading… " + percent + " %";
    });
    request.upload.addEventListener("load", () => {
      progress.bar.value = 100;
      progress.label.textContent = "Checking the image…";
    });
    request.addEventListener("load", () => {
      if (replaceWithAnswer(item, request.responseText)) return;
      if (request.status === 403) {
        fail(item, "Your session has expired. Reload the page, sign in again if asked, and retry.");
      } else {
        fail(item, "The server could not take \u201c" + file.name + "\u201d (HTTP " + request.status + "). Please try again.");
      }
    });
    request.addEventListener("error", () => {
      fail(item, "\u201c" + file.name + "\u201d could not be sent: the connection failed. Check your network and try again.");
    });
    request.addEventListener("loadend", () => {
      sending -= 1;
      next();
    });
    request.send(data);
  }

  function next() {
    while (sending < PARALLEL && waiting.length) send(waiting.shift());
  }

  function add(files) {
    Array.from(files).forEach((file) => {
      const item = placeholder(file);
      const problem = problemWith(file);
      if (problem) {
        fail(item, problem);
        return;
      }
      waiting.push({ file, item, progress: addProgress(item) });
    });
    next();
  }

  input.addEventListener("change", () => {
    add(input.files);
    input.value = "";
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    add(input.files);
    input.value = "";
  });

  ["dragenter", "dragover"].forEach((type) =>
    dropzone.addEventListener(type, (event) => {
      event.preventDefault();
      dropzone.classList.add("dragging");
    }),
  );
  ["dragleave", "dragend", "drop"].forEach((type) =>
    dropzone.addEventListener(type, () => dropzone.classList.remove("dragging")),
  );
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    event.stopPropagation();
    add(event.dataTransfer.files);
  });
  // A file dropped beside the zone would otherwise make the browser leave the page to show it.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());

  document.addEventListener("paste", (event) => {
    const files = Array.from((event.clipboardData && event.clipboardData.files) || []);
    if (!files.length) return;
    event.preventDefault();
    // Browsers call every pasted picture "image.png": number them so the list tells them apart.
    add(
      files.map((file) => {
        if (!acceptedTypes.includes(file.type)) return file;
        pasted += 1;
        const extension = file.type === "image/jpeg" ? "jpg" : file.type.split("/")[1];
        return new File([file], "pasted-image-" + pasted + "." + extension, { type: file.type });
      }),
    );
  });
})();
