// Transcript words follow the audio: click a word to hear it; the word being played is highlighted.
// The first time a recording plays, the listen is written to the ticket's audit log.
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]');
  function reportListen(audio) {
    if (!audio.dataset.listenUrl || audio.dataset.listened) return;
    audio.dataset.listened = "1";
    fetch(audio.dataset.listenUrl, { method: "POST", credentials: "same-origin",
      headers: { "X-CSRFToken": csrf ? csrf.content : "" } }).catch(function () {});
  }
  document.querySelectorAll("audio[data-listen-url]").forEach(function (audio) {
    audio.addEventListener("play", function () { reportListen(audio); });
  });
  document.querySelectorAll(".take").forEach(function (take) {
    const audio = take.querySelector("audio");
    const words = Array.from(take.querySelectorAll(".word"));
    if (!audio || !words.length) return;
    words.forEach(function (word) {
      word.addEventListener("click", function () {
        audio.currentTime = Number(word.dataset.start);
        audio.play().catch(function () {});
      });
    });
    audio.addEventListener("timeupdate", function () {
      const now = audio.currentTime;
      words.forEach(function (word) {
        const on = now >= Number(word.dataset.start) && now < Number(word.dataset.end);
        word.classList.toggle("current", on);
        if (on) word.setAttribute("aria-current", "true"); else word.removeAttribute("aria-current");
      });
    });
  });
})();
