// Admin: the audit log (who did what, when, with what outcome) and API tokens.
import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useId, useState } from "react";
import { Navigate } from "react-router-dom";
import { LoadMore, TableHead } from "../components/filters";
import { useApi, useCan } from "../auth";
import { Async, Badge, ConfirmDialog, CopyButton, ErrorNote, RelTime, Section } from "../components/ui";
import type { ApiToken, Role } from "../types";

export default function Admin() {
  if (!useCan("admin")) return <Navigate to="/" replace />;
  return (
    <>
      <div className="page-head">
        <h1>Audit log &amp; tokens</h1>
      </div>
      <Tokens />
      <Audit />
    </>
  );
}

function Audit() {
  const api = useApi();
  const [actor, setActor] = useState("");
  const [filter, setFilter] = useState("");
  const log = useInfiniteQuery({
    queryKey: ["audit", filter],
    queryFn: ({ pageParam }) => api.audit({ actor: filter || undefined, before: pageParam ?? undefined, limit: 100 }),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor ?? null,
  });
  return (
    <Section title="Audit log">
      <form className="filters" aria-label="Filter audit log" onSubmit={(e) => { e.preventDefault(); setFilter(actor.trim()); }}>
        <label>
          actor
          <input value={actor} onChange={(e) => setActor(e.target.value)} />
        </label>
        <button type="submit">Filter</button>
      </form>
      <Async query={log} what="the audit log" isEmpty={(d) => d.pages.every((p) => p.items.length === 0)} empty="No audited actions yet.">
        {(d) => (
          <>
            <table>
              <TableHead columns={["When", "Actor", "Action", "Target", "Outcome"]} />
              <tbody>
                {d.pages.flatMap((p) => p.items).map((a) => (
                  <tr key={a.id}>
                    <td>
                      <RelTime value={a.at} />
                    </td>
                    <td>{a.actor}</td>
                    <td className="mono">{a.action}</td>
                    <td className="mono">{a.target ?? "—"}</td>
                    <td>
                      <Badge status={a.outcome === "success" ? "completed" : a.outcome === "denied" ? "retrying" : "failed"} label={a.outcome} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            <LoadMore query={log} label="Older entries" />
          </>
        )}
      </Async>
    </Section>
  );
}

function Tokens() {
  const api = useApi();
  const client = useQueryClient();
  const tokens = useQuery({ queryKey: ["tokens"], queryFn: api.tokens });
  const [name, setName] = useState("");
  const [role, setRole] = useState<Role>("reader");
  const [revoking, setRevoking] = useState<ApiToken | null>(null);
  const ids = { name: useId(), role: useId() };
  const create = useMutation({
    mutationFn: () => api.createToken({ name: name.trim(), role }),
    onSuccess: () => {
      setName("");
      void client.invalidateQueries({ queryKey: ["tokens"] });
    },
  });
  const revoke = useMutation({
    mutationFn: (id: string) => api.revokeToken(id),
    onSuccess: () => {
      setRevoking(null);
      void client.invalidateQueries({ queryKey: ["tokens"] });
    },
  });
  return (
    <Section title="API tokens">
      <form className="filters" aria-label="Create a token" onSubmit={(e) => { e.preventDefault(); if (name.trim()) create.mutate(); }}>
        <label htmlFor={ids.name}>
          name
          <input id={ids.name} value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <label htmlFor={ids.role}>
          role
          <select id={ids.role} value={role} onChange={(e) => setRole(e.target.value as Role)}>
            <option>reader</option>
            <option>operator</option>
            <option>admin</option>
          </select>
        </label>
        <button type="submit" disabled={!name.trim() || create.isPending}>
          Create token
        </button>
      </form>
      {create.isSuccess ? (
        <p role="status" className="secret">
          New token (shown once): <code>{create.data.token}</code> <CopyButton text={create.data.token} label="Copy" />
        </p>
      ) : null}
      {create.isError ? <ErrorNote error={create.error} /> : null}
      <Async query={tokens} what="tokens" isEmpty={(d) => d.tokens.length === 0} empty="No tokens.">
        {(d) => (
          <table>
            <TableHead columns={["Name", "Role", "Created", "Last used", ""]} />
            <tbody>
              {d.tokens.map((t) => (
                <tr key={t.token_id}>
                  <td>{t.name ?? t.token_id}</td>
                  <td>{t.role}</td>
                  <td>
                    <RelTime value={t.created_at} />
                  </td>
                  <td>
                    <RelTime value={t.last_used_at} />
                  </td>
                  <td>
                    <button type="button" className="danger" onClick={() => setRevoking(t)}>
                      Revoke
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Async>
      {revoking ? (
        <ConfirmDialog
          title={`Revoke ${revoking.name ?? revoking.token_id}?`}
          confirmLabel="Revoke"
          danger
          busy={revoke.isPending}
          error={revoke.error}
          onCancel={() => setRevoking(null)}
          onConfirm={() => revoke.mutate(revoking.token_id)}
        >
          <p>Anything using this token is refused from now on.</p>
        </ConfirmDialog>
      ) : null}
    </Section>
  );
}
