// Result and history pages: the heatmap opacity slider and "select all"; both also work on fragments htmx swaps in.
(function () {
  "use strict";

  document.addEventListener("input", (event) => {
    const slider = event.target.closest("input[data-opacity-target]");
    if (!slider) return;
    const layer = document.getElementById(slider.dataset.opacityTarget);
    if (layer) layer.style.opacity = String(slider.value / 100);
    const output = document.querySelector('output[for="' + slider.id + '"]');
    if (output) output.textContent = slider.value + " %";
  });

  document.addEventListener("change", (event) => {
    if (event.target.id !== "select-all") return;
    const form = event.target.closest("form");
    form.querySelectorAll('input[name="analyses"]').forEach((box) => {
      box.checked = event.target.checked;
    });
  });

  // Controls that need this script stay hidden without it.
  htmx.onLoad((root) => {
    root.querySelectorAll(".opacity-control[hidden], .select-all[hidden]").forEach((node) => {
      node.hidden = false;
    });
  });
})();
