// Light and dark: follows the system until the user picks one.
export type Theme = "light" | "dark";
const KEY = "relayna-studio-theme";

export function initialTheme(): Theme {
  try {
    const saved = localStorage.getItem(KEY);
    if (saved === "light" || saved === "dark") return saved;
  } catch {
    // no storage
  }
  return typeof matchMedia === "function" && matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

/** Show `theme`; remember it only when the user picked it (else the system decides next time). */
export function applyTheme(theme: Theme, picked: boolean): void {
  document.documentElement.dataset.theme = theme;
  if (!picked) return;
  try {
    localStorage.setItem(KEY, theme);
  } catch {
    // no storage
  }
}
