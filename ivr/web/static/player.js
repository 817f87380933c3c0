// Transcript words follow the audio: click a word to hear it; the word being played is highlighted.
// Listens are audited by the server when it sends the audio; the players do not preload, so opening a
// page fetches nothing and is not a listen.
(function () {
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
