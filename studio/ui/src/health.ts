// Health summaries over the registry (the Overview and Services cards).
import type { ServiceRecord } from "./types";

import type { HealthPart, ServiceHealth } from "./types";

export const ATTENTION = new Set(["degraded", "stale", "unreachable"]);

const FINE = new Set(["ok", "healthy", "fresh", "reachable", "current", "up", "running", "available"]);

/** Why a service is not healthy, from the parts of its health document. */
export function healthReasons(health: ServiceHealth | null | undefined): string[] {
  if (!health) return [];
  const parts: [string, HealthPart | null | undefined][] = [
    ["http", health.http_status],
    ["capabilities", health.capability_status],
    ["observations", health.observation_freshness],
    ["workers", health.worker_health],
  ];
  const out: string[] = [];
  for (const [name, part] of parts) {
    if (!part || FINE.has(part.state)) continue;
    const detail = part.error_detail ?? part.detail;
    out.push(detail ? `${name} ${part.state}: ${detail}` : `${name} ${part.state}`);
  }
  if (health.events_skipped) out.push(`${health.events_skipped} events skipped`);
  return out;
}

export function overallOf(service: ServiceRecord): string {
  if (service.status === "disabled") return "disabled";
  return service.health?.overall_status ?? "unknown";
}

export interface HealthCounts {
  total: number;
  attention: number;
  healthy: number;
  unknown: number;
  unreachable: number;
  disabled: number;
}

export function countHealth(services: ServiceRecord[]): HealthCounts {
  const counts: HealthCounts = { total: services.length, attention: 0, healthy: 0, unknown: 0, unreachable: 0, disabled: 0 };
  for (const s of services) {
    const overall = overallOf(s);
    if (ATTENTION.has(overall)) counts.attention += 1;
    if (overall === "healthy") counts.healthy += 1;
    if (overall === "unknown") counts.unknown += 1;
    if (overall === "unreachable") counts.unreachable += 1;
    if (overall === "disabled") counts.disabled += 1;
  }
  return counts;
}

/** Services that need a look, worst first (unreachable, degraded, stale). */
export function incidents(services: ServiceRecord[]): ServiceRecord[] {
  const order = ["unreachable", "degraded", "stale"];
  return services
    .filter((s) => ATTENTION.has(overallOf(s)))
    .sort((a, b) => order.indexOf(overallOf(a)) - order.indexOf(overallOf(b)) || a.service_id.localeCompare(b.service_id));
}
