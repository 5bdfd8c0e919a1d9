// Live task updates: Studio's relayed SSE stream written into the query cache.
//
// Each status event is merged into the task detail's history (deduplicated by
// event id, so a resume after a lost connection never duplicates rows) and
// becomes its latest status at once (the graph's colours follow it). The graph
// itself is re-read after a short quiet period, since new attempts, retries and
// DLQ nodes are built by the backend from observations.
//
// A stream ends after a terminal status, but a failed task can run again (a
// DLQ replay, a manual retry): while the page is open it asks again every few
// seconds from the last event it has (the service answers 204 at once while
// nothing new happened) and follows the new run live when there is one.
import { useQueryClient, type QueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { useAuth } from "./auth";
import { defaultSleep, followStream, type SseMessage, type StreamState } from "./sse";
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

/** How long a page waits, after the stream ended, before asking whether the task ran again. */
export const REWATCH_MS = 5_000;

/** Follow the task's stream while mounted; returns the connection state. */
export function useTaskLive(
  sid: string,
  tid: string,
  enabled: boolean,
  graphRefetchMs = 150,
  rewatchMs = REWATCH_MS,
): { state: StreamState; error: string | null } {
  const { api } = useAuth();
  const client = useQueryClient();
  const [state, setState] = useState<StreamState>("connecting");
  const [error, setError] = useState<string | null>(null);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEffect(() => {
    if (!enabled) return undefined;
    const controller = new AbortController();
    const events = historyOf(client.getQueryData<TaskDetail>(taskKey(sid, tid)));
    let lastId = [...events].reverse().find((e) => e.event_id)?.event_id ?? null;
    let ended = false;
    const onMessage = (message: SseMessage) => {
      if (message.id) lastId = message.id;
      const event = parseStatus(message);
      if (!event) return;
      applyStatusEvent(client, sid, tid, event);
      if (timer.current) clearTimeout(timer.current);
      timer.current = setTimeout(() => void client.invalidateQueries({ queryKey: graphKey(sid, tid) }), graphRefetchMs);
    };
    void (async () => {
      while (!controller.signal.aborted) {
        await followStream({
          url: api.taskStreamUrl(sid, tid),
          token: api.token,
          fetch: api.fetch,
          lastEventId: lastId,
          signal: controller.signal,
          // After the end, a re-check that finds nothing new keeps saying "stream ended".
          onState: (s) => (ended && s === "connecting" ? undefined : setState(s)),
          onError: (message) => {
            ended = true;
            setError(message);
            controller.abort(); // a refusal does not change by asking again
          },
          onMessage,
        });
        ended = true;
        if (rewatchMs <= 0) break;
        await defaultSleep(rewatchMs, controller.signal);
      }
    })();
    return () => {
      controller.abort();
      if (timer.current) clearTimeout(timer.current);
    };
  }, [api, client, sid, tid, enabled, graphRefetchMs, rewatchMs]);
  return { state, error };
}
