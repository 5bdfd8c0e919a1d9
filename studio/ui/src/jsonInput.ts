// Validation of JSON typed by an operator (the retry override), before sending.
import type { Json } from "./types";

export type JsonCheck = { ok: true; value: Json | undefined } | { ok: false; message: string };

/**
 * Empty text means "no override". Anything else must be a JSON object: a task
 * payload is a mapping, so an array, a string or a number is refused here with
 * the reason, before the backend would answer 422.
 */
export function checkJsonObject(text: string, what = "the override payload"): JsonCheck {
  if (text.trim() === "") return { ok: true, value: undefined };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    return { ok: false, message: `not valid JSON: ${detail}` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { ok: false, message: `${what} must be a JSON object ({...})` };
  }
  return { ok: true, value: value as Json };
}
