import { describe, expect, it } from "vitest";
import { EMPTY_FORM, FormError, formToInput, parseLabels, recordToForm } from "./serviceForm";

const base = { ...EMPTY_FORM, service_id: "checker", name: "Checker", base_url: "http://checker.svc.local:8000" };

describe("service form", () => {
  it("parses key=value labels separated by commas or lines", () => {
    expect(parseLabels('service=checker,\napp = "api"', "loki_labels")).toEqual({ service: "checker", app: "api" });
  });

  it.each(["service", "=x", "k=", "a=b, c"])("refuses the label text %j", (text) => {
    expect(() => parseLabels(text, "loki_labels")).toThrow(FormError);
  });

  it("builds the registry body with de-duplicated tags and no configs by default", () => {
    const input = formToInput({ ...base, tags: "a, b, a, " });
    expect(input).toMatchObject({ service_id: "checker", tags: ["a", "b"], log_config: null, metrics_config: null, trace_config: null });
  });

  it("names the field that is wrong", () => {
    const cases: [Partial<typeof base>, string][] = [
      [{ service_id: " " }, "service_id"],
      [{ loki_enabled: true, loki_base_url: "http://loki.test", loki_labels: "" }, "loki_labels"],
      [{ prom_enabled: true, prom_base_url: "http://p.test", prom_labels: "service=x", prom_step_seconds: "2" }, "prom_step_seconds"],
      [{ tempo_enabled: true, tempo_base_url: "http://t.test", tempo_query_path: "/api/traces" }, "tempo_query_path"],
    ];
    for (const [change, field] of cases) {
      try {
        formToInput({ ...base, ...change });
        throw new Error(`no error for ${field}`);
      } catch (err) {
        expect(err).toBeInstanceOf(FormError);
        expect((err as FormError).field).toBe(field);
      }
    }
  });

  it("round-trips a record with every config through the form", () => {
    const input = formToInput({
      ...base,
      loki_enabled: true,
      loki_base_url: "http://loki.test",
      loki_labels: "service=checker",
      loki_task_match_mode: "contains",
      prom_enabled: true,
      prom_base_url: "http://prom.test",
      prom_labels: "service=checker",
      tempo_enabled: true,
      tempo_base_url: "http://tempo.test",
    });
    const again = formToInput(recordToForm({ ...input, status: "registered" }));
    expect(again).toEqual(input);
  });
});
