// QA evidence: each piece of evidence on the scorecard jumps the call's player to where it was said.
(function () {
  document.querySelectorAll(".take").forEach(function (take) {
    const audio = take.querySelector("audio");
    if (!audio) return;
    take.querySelectorAll("button.seek[data-start]").forEach(function (button) {
      button.addEventListener("click", function () {
        audio.currentTime = Number(button.dataset.start);
        audio.play().catch(function () {});
      });
    });
  });
})();
