import { describe, expect, it } from "vitest";
import { checkJsonObject } from "./jsonInput";

describe("checkJsonObject", () => {
  it("treats empty text as no override", () => {
    expect(checkJsonObject("  ")).toEqual({ ok: true, value: undefined });
  });
  it("accepts an object", () => {
    expect(checkJsonObject('{"a": [1, 2]}')).toEqual({ ok: true, value: { a: [1, 2] } });
  });
  it.each(["{a: 1}", "{", "[1,2]", "42", '"text"', "null", "{'a': 1}"])("refuses %s with a reason", (text) => {
    const r = checkJsonObject(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message.length).toBeGreaterThan(5);
  });
});
