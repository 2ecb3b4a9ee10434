// The property's photo strip: "Previous" / "Next" buttons and "Photo 2 of 5". Without this
// script the strip still scrolls (sideways, or with the arrow keys once it has the focus).
(() => {
  const strip = document.getElementById("photos");
  const count = document.getElementById("photo-count");
  const buttons = document.querySelectorAll(".photo-nav button");
  const total = strip.children.length;
  const current = () => Math.round(strip.scrollLeft / strip.clientWidth);
  const show = () => {
    const index = current();
    count.textContent = `Photo ${index + 1} of ${total}`;
    buttons[0].disabled = index === 0;
    buttons[1].disabled = index === total - 1;
  };
  for (const button of buttons) {
    button.hidden = false;
    button.addEventListener("click", () => {
      const index = Math.min(Math.max(current() + Number(button.dataset.step), 0), total - 1);
      strip.scrollTo({ left: index * strip.clientWidth, behavior: "smooth" });
    });
  }
  strip.addEventListener("scroll", show, { passive: true });
  show();
})();
