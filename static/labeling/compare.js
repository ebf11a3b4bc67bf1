// Keyboard-first labeling: 1–K / A–H choose (1–9 the confidence scale on pairwise-confidence projects; on ranking projects
// the keys place the samples in order, best first, "=" ties the next with the one before, Backspace takes back; with Likert
// axes, once chosen, 1–7 rate the highlighted cell), N none acceptable, Enter submits, U unsure, S skip, F flag, X the policy's andon cord,
// Z (or Ctrl+Z) undoes the last label for a few seconds, I instructions, ? keys. Enter submits only from the page itself, the choices or the submit button: on any other
// focused button it does what a button does (opens its dialog), so Tab to "Stop this policy" + Enter never stores a
// label.
// No inline script anywhere (CSP); htmx swaps #pair after each submit and we re-arm here.
(function () {
  "use strict";
  var LETTERS = "ABCDEFGH";
  var startedAt = performance.now();
  var timerHandle = null;

  function form() { return document.getElementById("label-form"); }
  function pairK() {
    var pair = document.getElementById("pair");
    return pair ? parseInt(pair.dataset.k, 10) : 0;
  }
  function notice(message) {
    var box = document.getElementById("notice");
    if (!box) return;
    box.textContent = "";
    var p = document.createElement("p");
    p.className = "notice notice-error";
    p.textContent = message;
    box.appendChild(p);
  }
  function clearNotice() {
    var box = document.getElementById("notice");
    if (box) box.textContent = "";
  }
  function setField(name, value) {
    var f = form();
    if (f && f.elements[name]) f.elements[name].value = value;
  }

  // Pairwise-confidence projects (#pair data-scale): keys 1–9 pick a point of the scale, which also says the side.
  function scaleMode() {
    var pair = document.getElementById("pair");
    return !!(pair && pair.dataset.scale);
  }
  function scalePoint() {
    var f = form();
    var input = f && f.querySelector("input[name=confidence]:checked");
    return input ? parseInt(input.value, 10) : 0;
  }
  function refreshChosen() {
    var f = form();
    if (!f || rankMode()) return;
    var point = scaleMode() ? scalePoint() : 0;
    var side = point ? (point < 5 ? 0 : (point > 5 ? 1 : -1)) : -1;
    f.querySelectorAll(".card").forEach(function (card) {
      var input = card.querySelector("input[type=radio]");
      var chosen = input ? input.checked : parseInt(card.dataset.position, 10) === side;
      card.classList.toggle("is-chosen", chosen);
      card.setAttribute("aria-checked", chosen ? "true" : "false");
    });
    f.querySelectorAll(".scale-point").forEach(function (label) {
      label.classList.toggle("is-chosen", parseInt(label.dataset.point, 10) === point);
    });
  }
  function chooseScale(point) {
    var f = form();
    var input = f && f.querySelector('input[name=confidence][value="' + point + '"]');
    if (!input) return;
    input.checked = true;
    refreshChosen();
    renderLikert();
    clearNotice();
  }
  function choose(position) {
    var f = form();
    if (!f) return;
    var input = f.querySelector('.card[data-position="' + position + '"] input[type=radio]');
    if (!input) return;
    input.checked = true;
    refreshChosen();
    renderLikert();
    clearNotice();
  }
  // Ranking projects (#pair data-ranking): the samples placed so far, best first, each {index, tie} where tie says it
  // shares the place of the one before. The hidden field "ranking" gets the keys ("B=CAD"; label_types.tiers_from_keys).
  var placed = [];
  var tieNext = false;
  function rankMode() {
    var pair = document.getElementById("pair");
    return !!(pair && pair.dataset.ranking);
  }
  function rankingComplete() { return placed.length === pairK(); }
  function rankOf() {
    var ranks = {}, rank = 0;
    placed.forEach(function (p) { if (!p.tie) rank += 1; ranks[p.index] = rank; });
    return ranks;
  }
  function renderRanking() {
    var f = form();
    if (!f || !rankMode()) return;
    var ranks = rankOf(), keys = "", line = "";
    placed.forEach(function (p, i) {
      keys += (p.tie ? "=" : "") + LETTERS[p.index];
      line += (i === 0 ? "" : (p.tie ? " = " : " > ")) + LETTERS[p.index];
    });
    if (tieNext) line += " = …";
    setField("ranking", keys);
    var out = document.getElementById("ranking-order");
    if (out) out.textContent = line || "press the samples in order, best first";
    f.querySelectorAll(".card").forEach(function (card) {
      var index = parseInt(card.dataset.position, 10);
      var mark = card.querySelector(".rank-mark");
      var rank = ranks[index];
      if (mark) mark.textContent = rank ? "#" + rank : "";
      card.classList.toggle("is-ranked", !!rank);
      card.classList.toggle("is-chosen", rank === 1);
    });
    renderLikert();
  }
  function rankPlace(index) {
    if (placed.some(function (p) { return p.index === index; })) {
      notice(LETTERS[index] + " is already placed; Backspace takes back the last one.");
      return;
    }
    placed.push({ index: index, tie: tieNext && placed.length > 0 });
    tieNext = false;
    clearNotice();
    renderRanking();
  }
  function rankTie() {
    if (!placed.length || rankingComplete()) return;
    tieNext = true;
    renderRanking();
  }
  function rankBack() {
    if (tieNext) tieNext = false;
    else placed.pop();
    renderRanking();
  }

  // Likert axes (#pair data-likert: the axes' names): a rating 1–7 per sample and axis, filled in reading order
  // (each axis, A to the last sample) once the choice or the ranking is made.
  var ratings = {};
  function likertAxes() {
    var pair = document.getElementById("pair");
    return pair && pair.dataset.likert ? pair.dataset.likert.split(" ") : [];
  }
  function likertCells() { return Array.prototype.slice.call(document.querySelectorAll(".likert-cell")); }
  function cellKey(cell) { return cell.dataset.axis + ":" + cell.dataset.position; }
  function likertCurrent() {
    var cells = likertCells();
    for (var i = 0; i < cells.length; i++) if (!ratings[cellKey(cells[i])]) return cells[i];
    return null;
  }
  function likertComplete() { return likertAxes().length === 0 || likertCurrent() === null; }
  function choiceMade() { return rankMode() ? rankingComplete() : hasChoice(); }
  function renderLikert() {
    var axes = likertAxes();
    if (!axes.length) return;
    var current = choiceMade() ? likertCurrent() : null;
    likertCells().forEach(function (cell) {
      var value = ratings[cellKey(cell)];
      cell.textContent = value ? String(value) : "·";
      cell.classList.toggle("is-current", cell === current);
    });
    axes.forEach(function (axis) {
      var digits = "";
      for (var i = 0; i < pairK(); i++) digits += String(ratings[axis + ":" + i] || 0);
      setField("likert-" + axis, /[1-7]/.test(digits) ? digits : "");
    });
  }
  // A cell clicked (focused) takes the next digit, even one already rated; otherwise the next empty cell does.
  function rate(value, focused) {
    var cell = focused || likertCurrent();
    if (!cell) return;
    if (focused) focused.blur();
    ratings[cellKey(cell)] = value;
    clearNotice();
    renderLikert();
  }
  function likertBack() {
    var cells = likertCells().filter(function (c) { return ratings[cellKey(c)]; });
    if (!cells.length) return false;
    delete ratings[cellKey(cells[cells.length - 1])];
    renderLikert();
    return true;
  }

  function hasChoice() {
    var f = form();
    return !!(f && f.querySelector("input[name=choice]:checked, input[name=confidence]:checked"));
  }
  function submit() {
    var f = form();
    if (!f || f.dataset.busy === "1") return;
    if (f.elements.skip.value !== "1") {
      if (rankMode() && !rankingComplete()) {
        notice("Rank all " + pairK() + " samples first: press A–" + LETTERS[pairK() - 1] + " in order, best first (= ties).");
        return;
      }
      if (!rankMode() && !hasChoice()) {
        if (scaleMode()) { notice("Pick a point of the scale first: 1–9."); return; }
        notice("Choose a sample first: 1–" + pairK() + " or A–" + LETTERS[pairK() - 1] + ".");
        return;
      }
      if (!likertComplete()) { notice("Rate every sample on each axis: 1 (very poor) to 7 (excellent)."); return; }
    }
    f.requestSubmit();
  }
  // Enter on the page, on a choice (or the unsure box) or on the submit button submits; on another focused button
  // or a link it keeps its native meaning.
  function enterSubmits(t) {
    if (!t || t === document.body || t === document.documentElement) return true;
    var f = form();
    if (!f || !f.contains(t)) return false;
    var button = t.closest("button");
    return !button || (button.type === "submit" && button.form === f);
  }
  // Undo: the form #pair carries after a submit, usable for its data-undo-seconds.
  var undoHandle = null;
  function undoForm() {
    var u = document.getElementById("undo-form");
    return u && u.dataset.expired !== "1" ? u : null;
  }
  function armUndo() {
    if (undoHandle !== null) { clearTimeout(undoHandle); undoHandle = null; }
    var u = document.getElementById("undo-form");
    if (!u) return;
    undoHandle = setTimeout(function () {
      u.dataset.expired = "1";
      document.querySelectorAll('button[form="undo-form"]').forEach(function (b) {
        b.disabled = true;
        b.classList.add("is-expired");
      });
    }, 1000 * parseFloat(u.dataset.undoSeconds || "0"));
  }
  function undo() {
    var u = undoForm();
    if (u && u.dataset.busy !== "1") u.requestSubmit();
  }
  // The instructions panel and the flag sheet sit at the right; the page narrows beside them.
  function syncSidePanel() {
    var panel = document.getElementById("instructions");
    var sheet = document.getElementById("flag-dialog");
    var open = (panel && !panel.hidden) || (sheet && sheet.open);
    var bar = document.querySelector(".topbar");
    if (open && bar) document.documentElement.style.setProperty("--side-top", bar.getBoundingClientRect().bottom + "px");
    document.body.classList.toggle("side-open", !!open);
  }
  function toggleInstructions() {
    var panel = document.getElementById("instructions");
    var button = document.querySelector("[data-toggle-instructions]");
    if (!panel) return;
    panel.hidden = !panel.hidden;
    if (button) button.setAttribute("aria-expanded", panel.hidden ? "false" : "true");
    syncSidePanel();
  }
  function openDialog(id) {
    var d = document.getElementById(id);
    if (!d || d.open) return;
    if (id === "flag-dialog") {
      var chosen = form() && form().querySelector("input[name=choice]:checked");
      if (chosen) d.querySelector("select[name=position]").value = chosen.value;
    }
    d.showModal();
    syncSidePanel();
    var first = d.querySelector("textarea, select, button");
    if (first) first.focus();
  }

  function tick() {
    var el = document.getElementById("timer");
    if (!el) return;
    var s = Math.floor((performance.now() - startedAt) / 1000);
    var mm = String(Math.floor(s / 60)).padStart(2, "0");
    var ss = String(s % 60).padStart(2, "0");
    el.textContent = mm + ":" + ss;
  }
  function arm() {
    startedAt = performance.now();
    tick();
    if (timerHandle === null) timerHandle = setInterval(tick, 1000);
    var f = form();
    if (f) {
      f.setAttribute("tabindex", "-1");
      f.focus({ preventScroll: true });
    }
    var cont = document.querySelector("[data-feedback-continue]");
    if (cont) cont.focus({ preventScroll: true });
    placed = [];
    tieNext = false;
    ratings = {};
    refreshChosen();
    renderRanking();
    renderLikert();
    armUndo();
    syncSidePanel();
  }

  document.addEventListener("keydown", function (e) {
    if (document.querySelector("dialog[open]")) {
      var open = document.querySelector("dialog[open]");
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        var ok = open.querySelector('button[value="ok"]');
        if (ok) { e.preventDefault(); ok.click(); }
      }
      return; // Esc closes natively; typing goes to the dialog's fields
    }
    var t = e.target;
    var typing = t && (t.tagName === "TEXTAREA" || t.tagName === "SELECT" ||
      (t.tagName === "INPUT" && t.type !== "radio" && t.type !== "checkbox"));
    if (!typing && (e.ctrlKey || e.metaKey) && !e.altKey && (e.key === "z" || e.key === "Z") && undoForm()) {
      e.preventDefault(); undo(); return;
    }
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    var k = pairK();
    var key = e.key;
    if ((key === "z" || key === "Z") && undoForm()) { e.preventDefault(); undo(); return; }
    if (key === "?") { e.preventDefault(); openDialog("help-dialog"); return; }
    if (key === "Enter" && document.querySelector("[data-feedback-continue]")) {
      // After a qualification or gold item: Enter leaves the researchers' answer for the next item (directly, not
      // by a click: a click right after the swap can come before htmx has wired the button).
      e.preventDefault();
      var cont = document.querySelector("[data-feedback-continue]");
      if (cont.dataset.busy !== "1") {
        cont.dataset.busy = "1";
        htmx.ajax("GET", cont.getAttribute("hx-get"), { target: "#pair", swap: "outerHTML" });
      }
      return;
    }
    if (key === "Enter") {
      if (!enterSubmits(t)) return;
      e.preventDefault(); submit(); return;
    }
    if (!k || !form()) {
      if (key === "i" || key === "I") toggleInstructions();
      return;
    }
    if (key === "Backspace") {
      if (likertBack()) { e.preventDefault(); return; }
      if (rankMode() && (placed.length || tieNext)) { e.preventDefault(); rankBack(); return; }
      return;
    }
    var focusedCell = t && t.classList && t.classList.contains("likert-cell") ? t : null;
    if (likertAxes().length && choiceMade() && (focusedCell || !likertComplete()) && /^[1-7]$/.test(key)) {
      e.preventDefault(); rate(parseInt(key, 10), focusedCell); return;
    }
    if (rankMode()) {
      if (key === "=") { e.preventDefault(); rankTie(); return; }
      var rankIndex = /^[1-8]$/.test(key) ? parseInt(key, 10) - 1 : (key.length === 1 ? LETTERS.indexOf(key.toUpperCase()) : -1);
      var rankFlag = key.toUpperCase() === "F" && (k < 6 || e.shiftKey);
      if (!rankFlag && rankIndex >= 0 && rankIndex < k) { e.preventDefault(); rankPlace(rankIndex); return; }
    }
    if (scaleMode() && /^[1-9]$/.test(key)) { e.preventDefault(); chooseScale(parseInt(key, 10)); return; }
    if (/^[1-8]$/.test(key) && parseInt(key, 10) <= k) { e.preventDefault(); choose(parseInt(key, 10) - 1); return; }
    var upper = key.length === 1 ? key.toUpperCase() : "";
    var flagKey = upper === "F" && (k < 6 || e.shiftKey);
    if (flagKey) { e.preventDefault(); openDialog("flag-dialog"); return; }
    var index = upper ? LETTERS.indexOf(upper) : -1;
    if (index >= 0 && index < k) { e.preventDefault(); choose(index); return; }
    if (upper === "U") {
      e.preventDefault();
      var box = form().querySelector("input[name=unsure]");
      box.checked = !box.checked;
      return;
    }
    if (upper === "N" && form().querySelector("input[name=none_acceptable]")) {
      e.preventDefault();
      var none = form().querySelector("input[name=none_acceptable]");
      none.checked = !none.checked;
      return;
    }
    if (upper === "S") { e.preventDefault(); openDialog("skip-dialog"); return; }
    if (upper === "X" && document.getElementById("andon-dialog")) { e.preventDefault(); openDialog("andon-dialog"); return; }
    if (upper === "I") { e.preventDefault(); toggleInstructions(); return; }
  });

  document.addEventListener("change", function (e) {
    if (e.target && (e.target.name === "choice" || e.target.name === "confidence")) { refreshChosen(); renderLikert(); clearNotice(); }
  });

  document.addEventListener("click", function (e) {
    var rankCard = rankMode() && e.target.closest && e.target.closest("#label-form .card");
    if (rankCard) { e.preventDefault(); rankPlace(parseInt(rankCard.dataset.position, 10)); return; }
    var opener = e.target.closest && e.target.closest("[data-open]");
    if (opener) { e.preventDefault(); openDialog(opener.dataset.open); return; }
    var close = e.target.closest && e.target.closest("[data-close]");
    if (close) { var d = close.closest("dialog"); if (d) d.close(); return; }
    if (e.target.closest && e.target.closest("[data-toggle-instructions]")) { toggleInstructions(); }
  });

  // Dialog forms (method=dialog): act on their submit, which fires before the dialog closes,
  // so a keystroke right after Ctrl+Enter already sees the skip or flag fields set.
  document.addEventListener("submit", function (e) {
    var dialogForm = e.target;
    var d = dialogForm.closest && dialogForm.closest("dialog");
    if (!d || !e.submitter || e.submitter.value !== "ok") return;
    if (d.id === "skip-dialog") {
      var reason = d.querySelector("textarea[name=reason]").value.trim();
      if (!reason) { e.preventDefault(); return; }
      setField("skip", "1");
      setField("skip_reason", reason);
      setTimeout(function () { form().requestSubmit(); }, 0);
    } else if (d.id === "flag-dialog") {
      var position = d.querySelector("select[name=position]").value;
      var note = d.querySelector("textarea[name=note]").value.trim();
      if (!note) { e.preventDefault(); return; }
      setField("flag_position", position);
      setField("flag_note", note);
      setField("flag_correction", d.querySelector("textarea[name=correction]").value);
      form().querySelectorAll(".flag-mark").forEach(function (m) { m.hidden = true; });
      var card = form().querySelector('.card[data-position="' + LETTERS.indexOf(position) + '"] .flag-mark');
      if (card) card.hidden = false;
    }
  }, true);

  document.addEventListener("close", function (e) {
    if (e.target && e.target.id === "flag-dialog") syncSidePanel();
  }, true);

  document.body.addEventListener("htmx:configRequest", function (e) {
    if (e.detail.elt && e.detail.elt.id === "undo-form") e.detail.elt.dataset.busy = "1";
    if (e.detail.elt && e.detail.elt.id === "label-form") {
      e.detail.parameters.duration_ms = String(Math.round(performance.now() - startedAt));
      e.detail.elt.dataset.busy = "1";
    }
  });
  document.body.addEventListener("htmx:afterRequest", function (e) {
    var closer = e.detail.elt && e.detail.elt.closest && e.detail.elt.closest("form[data-close-dialog]");
    if (closer) {
      var dlg = closer.closest("dialog");
      if (dlg && dlg.open) dlg.close();
      if (e.detail.successful && closer.dataset.nextUrl) {
        // The run's comparisons were withdrawn: fetch the next one in place.
        htmx.ajax("GET", closer.dataset.nextUrl, { target: "#pair", swap: "outerHTML" });
      }
      return;
    }
    if (e.detail.elt && e.detail.elt.id === "undo-form") {
      e.detail.elt.dataset.busy = "";
      if (e.detail.successful) clearNotice();
      return;
    }
    if (e.detail.elt && e.detail.elt.id === "label-form") {
      e.detail.elt.dataset.busy = "";
      if (e.detail.successful) clearNotice();
      else setField("skip", "0");
    }
  });
  document.body.addEventListener("htmx:afterSwap", function (e) {
    if (e.detail.target && e.detail.target.id === "pair") arm();
  });
  document.body.addEventListener("htmx:sendError", function () {
    notice("Could not reach the server. Your answer was not sent; try Enter again.");
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", arm);
  else arm();
})();
