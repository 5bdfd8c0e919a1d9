// ANSI SGR colour codes in log lines -> styled segments (the raw text stays as the backend sent it).
export interface Segment {
  text: string;
  classes: string[];
}

const COLOURS = ["black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"];

// eslint-disable-next-line no-control-regex
const SGR = /\u001b\[([0-9;]*)m/g;

export function ansiSegments(line: string): Segment[] {
  const out: Segment[] = [];
  let fg: string | null = null;
  let bold = false;
  let last = 0;
  const push = (text: string) => {
    if (!text) return;
    const classes: string[] = [];
    if (fg) classes.push(`ansi-${fg}`);
    if (bold) classes.push("ansi-bold");
    out.push({ text, classes });
  };
  for (const match of line.matchAll(SGR)) {
    push(line.slice(last, match.index));
    last = (match.index ?? 0) + match[0].length;
    const codes = (match[1] || "0").split(";").map(Number);
    for (const code of codes) {
      if (code === 0) {
        fg = null;
        bold = false;
      } else if (code === 1) bold = true;
      else if (code === 22) bold = false;
      else if (code === 39) fg = null;
      else if (code >= 30 && code <= 37) fg = COLOURS[code - 30] ?? null;
      else if (code >= 90 && code <= 97) fg = COLOURS[code - 90] ?? null;
    }
  }
  push(line.slice(last));
  // Anything else that looks like an escape sequence is dropped, not shown as garbage.
  // eslint-disable-next-line no-control-regex
  return out.map((s) => ({ ...s, text: s.text.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, "") }));
}

/** A message that is a JSON object or array, pretty-printed; otherwise null. */
export function prettyJson(message: string): string | null {
  const t = message.trim();
  if (!(t.startsWith("{") || t.startsWith("["))) return null;
  try {
    return JSON.stringify(JSON.parse(t), null, 2);
  } catch {
    return null;
  }
}
