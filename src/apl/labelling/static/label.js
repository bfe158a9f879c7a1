// Keys A / B / T / S answer, U undoes: each presses the button that carries its data-key.
"use strict";
let sent = false;
document.addEventListener("submit", () => { sent = true; });
document.addEventListener("keydown", (event) => {
  if (sent || event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  const button = document.querySelector(`button[data-key="${event.key.toLowerCase()}"]`);
  if (button) {
    event.preventDefault();
    button.click();
  }
});
