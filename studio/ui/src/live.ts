// Live task updates: Studio's relayed SSE stream written into the query cache.
//
// Each status event is merged into the task detail's history (deduplicated by
// event id, so a resume after a lost connection never duplicates rows) and
// becomes its latest status at once (the graph's colours follow it). The graph
// itself is re-read after a short quiet period, since new attempts, retries and
// DLQ nodes are built by the backend from observations.
import { useQueryClient, type QueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { useAuth } from "./auth";
import { followStream, type SseMessage, type StreamState } from "./sse";
import { mergeEvents } from "./timeline";
import type { StatusEvent, TaskDetail } from "./types";

export const taskKey = (sid: string, tid: string) => ["task", sid, tid] as const;
export const graphKey = (sid: string, tid: string) => ["task-graph", sid, tid] as const;

export function historyOf(detail: TaskDetail | undefined): StatusEvent[] {
  return detail?.history ?? [];
}

export function latestOf(detail: TaskDetail | undefined): StatusEvent | null {
  return detail?.latest_status ?? null;
}

/** Write one live status event into the cached task detail. */
export function applyStatusEvent(client: QueryClient, sid: string, tid: string, event: StatusEvent): void {
  client.setQueryData<TaskDetail>(taskKey(sid, tid), (old) => {
    if (!old) return old;
    const merged = mergeEvents(old.history, [event]);
    if (merged === old.history) return old;
    return { ...old, history: merged, latest_status: merged[merged.length - 1] ?? event };
  });
}

export function parseStatus(message: SseMessage): StatusEvent | null {
  if (message.event !== "status") return null;
  try {
    const value: unknown = JSON.parse(message.data);
    if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
    const event = value as StatusEvent;
    if (typeof event.status !== "string") return null;
    if (!event.event_id && message.id) event.event_id = message.id;
    return event;
  } catch {
    return null;
  }
}

/** Follow the task's stream while mounted; returns the connection state. */
export function useTaskLive(sid: string, tid: string, enabled: boolean, graphRefetchMs = 150): { state: StreamState; error: string | null } {
  const { api } = useAuth();
  const client = useQueryClient();
  const [state, setState] = useState<StreamState>("connecting");
  const [error, setError] = useState<string | null>(null);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEffect(() => {
    if (!enabled) return undefined;
    const controller = new AbortController();
    const events = historyOf(client.getQueryData<TaskDetail>(taskKey(sid, tid)));
    const resumeFrom = [...events].reverse().find((e) => e.event_id)?.event_id ?? null;
    void followStream({
      url: api.taskStreamUrl(sid, tid),
      token: api.token,
      fetch: api.fetch,
      lastEventId: resumeFrom,
      signal: controller.signal,
      onState: setState,
      onError: setError,
      onMessage: (message) => {
        const event = parseStatus(message);
        if (!event) return;
        applyStatusEvent(client, sid, tid, event);
        if (timer.current) clearTimeout(timer.current);
        timer.current = setTimeout(() => void client.invalidateQueries({ queryKey: graphKey(sid, tid) }), graphRefetchMs);
      },
    });
    return () => {
      controller.abort();
      if (timer.current) clearTimeout(timer.current);
    };
  }, [api, client, sid, tid, enabled, graphRefetchMs]);
  return { state, error };
}
