// Log panels for a service or a task: source badges, ANSI colours, JSON pretty-printed.
import { useInfiniteQuery } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import type { Query } from "../api";
import type { LogEntry, Page } from "../types";
import { ansiSegments, prettyJson } from "./ansi";
import { Async, RelTime } from "./ui";

interface Props {
  queryKey: readonly unknown[];
  fetchPage: (q: Query) => Promise<Page<LogEntry>>;
  baseQuery?: Query;
}

export function LogView({ queryKey, fetchPage, baseQuery }: Props) {
  const [filters, setFilters] = useState<Query>({});
  const logs = useInfiniteQuery({
    queryKey: [...queryKey, baseQuery, filters],
    queryFn: ({ pageParam }) => fetchPage({ ...baseQuery, ...filters, limit: 100, before: pageParam ?? undefined }),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor ?? null,
  });
  const apply = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const d = new FormData(e.currentTarget);
    const toIso = (v: FormDataEntryValue | null) => (v ? new Date(String(v)).toISOString() : undefined);
    setFilters({
      query: String(d.get("query") ?? "") || undefined,
      level: String(d.get("level") ?? "") || undefined,
      source: String(d.get("source") ?? "") || undefined,
      pod: String(d.get("pod") ?? "") || undefined,
      from: toIso(d.get("from")),
      to: toIso(d.get("to")),
    });
  };
  return (
    <div>
      <form className="filters" onSubmit={apply} aria-label="Filter logs">
        <label>
          Text <input name="query" />
        </label>
        <label>
          Level <input name="level" />
        </label>
        <label>
          Source <input name="source" />
        </label>
        <label>
          Pod <input name="pod" />
        </label>
        <label>
          From <input name="from" type="datetime-local" />
        </label>
        <label>
          To <input name="to" type="datetime-local" />
        </label>
        <button type="submit">Apply</button>
      </form>
      <Async query={logs} what="logs" isEmpty={(d) => d.pages.every((p) => p.items.length === 0)} empty="No log lines in this window.">
        {(d) => (
          <>
            <ol className="logs">
              {d.pages.flatMap((p) => p.items).map((entry, i) => (
                <LogLine key={`${entry.timestamp}-${i}`} entry={entry} />
              ))}
            </ol>
            {logs.hasNextPage ? (
              <button type="button" onClick={() => void logs.fetchNextPage()} disabled={logs.isFetchingNextPage}>
                {logs.isFetchingNextPage ? "Loading…" : "Older lines"}
              </button>
            ) : null}
          </>
        )}
      </Async>
    </div>
  );
}

function LogLine({ entry }: { entry: LogEntry }) {
  const json = prettyJson(entry.message);
  return (
    <li className={`log level-${(entry.level ?? "").toLowerCase()}`}>
      <RelTime value={entry.timestamp} /> <span className="tag">{entry.source}</span>
      {entry.level ? <span className="tag">{entry.level}</span> : null}{" "}
      {json ? (
        <pre className="json">{json}</pre>
      ) : (
        <span className="log-msg">
          {ansiSegments(entry.message).map((s, i) => (
            <span key={i} className={s.classes.join(" ") || undefined}>
              {s.text}
            </span>
          ))}
        </span>
      )}
    </li>
  );
}
