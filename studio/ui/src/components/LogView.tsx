// Log panels for a service or a task: source badges, ANSI colours, JSON pretty-printed.
import { useInfiniteQuery } from "@tanstack/react-query";
import { useState } from "react";
import type { Query } from "../api";
import type { LogEntry, Page } from "../types";
import { ansiSegments, prettyJson } from "./ansi";
import { FilterForm, LoadMore, type FilterField } from "./filters";

const LOG_FILTERS: FilterField[] = [
  { name: "query", label: "Text" },
  { name: "level", label: "Level" },
  { name: "source", label: "Source" },
  { name: "pod", label: "Pod" },
  { name: "from", label: "From", kind: "datetime" },
  { name: "to", label: "To", kind: "datetime" },
];
import { Async, RelTime } from "./ui";

interface Props {
  queryKey: readonly unknown[];
  fetchPage: (q: Query) => Promise<Page<LogEntry>>;
  baseQuery?: Query;
}

export function LogView({ queryKey, fetchPage, baseQuery }: Props) {
  const [filters, setFilters] = useState<Record<string, string>>({});
  const logs = useInfiniteQuery({
    queryKey: [...queryKey, baseQuery, filters],
    queryFn: ({ pageParam }) => fetchPage({ ...baseQuery, ...filters, limit: 100, before: pageParam ?? undefined }),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor ?? null,
  });
  return (
    <div>
      <FilterForm label="Filter logs" fields={LOG_FILTERS} values={filters} onApply={setFilters} />
      <Async query={logs} what="logs" isEmpty={(d) => d.pages.every((p) => p.items.length === 0)} empty="No log lines in this window.">
        {(d) => (
          <>
            <ol className="logs">
              {d.pages.flatMap((p) => p.items).map((entry, i) => (
                <LogLine key={`${entry.timestamp}-${i}`} entry={entry} />
              ))}
            </ol>
            <LoadMore query={logs} label="Older lines" />
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
