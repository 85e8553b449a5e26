/* MPO Portal: the little JavaScript the pages use. Everything works without it (plain links and form POSTs);
   with it, live regions refresh themselves, the override form suggests modules and tags, and YAML copies. */
(function () {
  "use strict";

  /* Live regions: an element with data-refresh-url gets its content refreshed every data-refresh-seconds,
     while the tab is visible. Only what changed is replaced: an unchanged row keeps its elements, so a click,
     a text selection or the focus in it survives the refresh. Focus inside a replaced part moves to the "same"
     element of the new content. */
  function focusKey(el) {
    if (!el) return null;
    if (el.id) return "#" + CSS.escape(el.id);
    var row = el.closest("[data-key]");
    if (row && el.tagName === "A") return '[data-key="' + CSS.escape(row.dataset.key) + '"] a';
    return null;
  }

  /* Markup compared the way it renders: the page's first render and the fragment differ in indentation only. */
  function squash(markup) {
    return markup.replace(/\s+/g, " ").trim();
  }

  function hasLooseText(parent) {
    return Array.prototype.some.call(parent.childNodes, function (node) {
      return node.nodeType === Node.TEXT_NODE && node.data.trim() !== "";
    });
  }

  function partKey(el) {
    return el.tagName + "|" + (el.dataset.key || el.id || "");
  }

  /* Puts the fragment `html` into `region`; returns false when it renders the same as what is there. Parsed in
     a copy of the region so a <tbody> fragment parses as rows and markup compares in the browser's spelling. */
  function applyFragment(region, html) {
    var fresh = region.cloneNode(false);
    fresh.innerHTML = html;
    if (squash(fresh.innerHTML) === squash(region.innerHTML)) return false;
    var oldParts = region.children;
    var newParts = Array.prototype.slice.call(fresh.children);
    var sameShape = oldParts.length === newParts.length && !hasLooseText(region) && !hasLooseText(fresh) &&
      newParts.every(function (part, i) { return partKey(part) === partKey(oldParts[i]); });
    if (!sameShape) {  // rows came or went: replace everything
      region.replaceChildren.apply(region, Array.prototype.slice.call(fresh.childNodes));
      return true;
    }
    Array.prototype.slice.call(oldParts).forEach(function (part, i) {
      if (squash(part.outerHTML) !== squash(newParts[i].outerHTML)) part.replaceWith(newParts[i]);
    });
    return true;
  }

  function startRefresh(region) {
    var url = region.dataset.refreshUrl;
    var seconds = Math.max(1, parseInt(region.dataset.refreshSeconds || "5", 10));
    var note = document.querySelector("[data-refresh-note]");
    var stamp = document.querySelector("[data-refresh-time]");
    var busy = false;
    var stopped = false;
    if (note) note.hidden = false;

    function tick() {
      if (stopped || busy || document.hidden) return;
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
        .then(function (response) {
          // A redirect means the session ended (login page): stop instead of pasting a login form in a table.
          if (response.redirected || !response.ok) {
            if (response.redirected || response.status === 403 || response.status === 404) {
              stopped = true;
              if (note) note.textContent = "Automatic refresh stopped: reload the page.";
            }
            return null;
          }
          return response.text();
        })
        .then(function (html) {
          if (html === null || html === undefined) return;
          var key = region.contains(document.activeElement) ? focusKey(document.activeElement) : null;
          if (applyFragment(region, html)) {
            if (key && !region.contains(document.activeElement)) {
              var again = region.querySelector(key);
              if (again) again.focus();
            }
            region.dispatchEvent(new CustomEvent("portal:refreshed", { bubbles: true }));
          }
          if (stamp) stamp.textContent = new Date().toISOString().slice(11, 19) + " UTC";
        })
        .catch(function () { /* network hiccup: try again next tick */ })
        .finally(function () { busy = false; });
    }

    setInterval(tick, seconds * 1000);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) tick(); });
  }

  /* The override form: module suggestions follow the selected source; tag suggestions come from the
     registry (through the portal) once source and module are known. Errors are shown politely. */
  function setOptions(datalist, values) {
    datalist.textContent = "";
    values.forEach(function (value) {
      var option = document.createElement("option");
      option.value = value;
      datalist.appendChild(option);
    });
  }

  function initOverrideForm(form) {
    var source = form.querySelector("[name=source]");
    var module = form.querySelector("[name=name]");
    var modules = document.getElementById("module-suggestions");
    var tags = document.getElementById("tag-suggestions");
    var status = document.getElementById("tag-status");
    if (!source || !module || !tags) return;
    var lastTagsKey = null;
    var timer = null;

    function urlFor(template, name) {
      return template.replace("__source__", encodeURIComponent(name));
    }

    function loadModules() {
      if (!modules || !source.value) return;
      fetch(urlFor(form.dataset.modulesUrl, source.value), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : { modules: [] }; })
        .then(function (data) { setOptions(modules, data.modules || []); })
        .catch(function () {});
    }

    function loadTags() {
      var name = module.value.trim();
      if (!source.value || !name) { setOptions(tags, []); status.textContent = ""; return; }
      var key = source.value + "/" + name;
      if (key === lastTagsKey) return;
      lastTagsKey = key;
      status.textContent = "Looking up the tags of " + name + "…";
      var url = urlFor(form.dataset.tagsUrl, source.value) + "?module=" + encodeURIComponent(name);
      fetch(url, { credentials: "same-origin" })
        .then(function (r) { return r.json().catch(function () { return { tags: [], error: "no answer" }; }); })
        .then(function (data) {
          if (key !== lastTagsKey) return;
          setOptions(tags, data.tags || []);
          if (data.error) {
            status.textContent = "No tag suggestions: " + data.error + " You can still type a tag.";
          } else if (!data.tags.length) {
            status.textContent = "The registry has no tags for " + name + " yet.";
          } else {
            status.textContent = data.tags.length + " tag" + (data.tags.length === 1 ? "" : "s") +
              " found in the registry" + (data.truncated ? " (the first ones)" : "") + ".";
          }
        })
        .catch(function () {
          if (key === lastTagsKey) status.textContent = "Could not reach the portal to list tags; type the tag.";
          lastTagsKey = null;
        });
    }

    source.addEventListener("change", function () { lastTagsKey = null; loadModules(); loadTags(); });
    module.addEventListener("change", loadTags);
    module.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(loadTags, 400);
    });
    if (module.value) loadTags();
  }

  /* Copy buttons: shown only where the clipboard works; the text stays selectable without them. */
  function initCopy(button) {
    var target = document.getElementById(button.dataset.copyTarget);
    var status = button.parentElement.querySelector(".copy-status");
    if (!target || !navigator.clipboard) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(target.textContent).then(
        function () { if (status) status.textContent = "Copied."; },
        function () { if (status) status.textContent = "Copy failed: select the text and copy it."; }
      );
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh-url]").forEach(startRefresh);
    var form = document.getElementById("override-form");
    if (form) initOverrideForm(form);
    document.querySelectorAll("[data-copy-target]").forEach(initCopy);
  });
})();
