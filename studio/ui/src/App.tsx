// The shell: header navigation, login when auth is on, lazy-loaded pages.
import { lazy, Suspense, useEffect, useState, type FormEvent } from "react";
import { Navigate, NavLink, Route, Routes } from "react-router-dom";
import { allows, useAuth } from "./auth";
import { ErrorNote, Loading, NowProvider } from "./components/ui";
import { applyTheme, initialTheme, type Theme } from "./theme";

const Overview = lazy(() => import("./pages/Overview"));
const Services = lazy(() => import("./pages/Services"));
const ServiceDetail = lazy(() => import("./pages/ServiceDetail"));
const Topology = lazy(() => import("./pages/Topology"));
const Dlq = lazy(() => import("./pages/Dlq"));
const FailedTasks = lazy(() => import("./pages/FailedTasks"));
const TaskSearch = lazy(() => import("./pages/TaskSearch"));
const TaskDetail = lazy(() => import("./pages/TaskDetail"));
const Admin = lazy(() => import("./pages/Admin"));

export function Login({ refused }: { refused: boolean }) {
  const { login } = useAuth();
  const [token, setToken] = useState("");
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (token.trim()) login(token.trim());
  };
  return (
    <main className="login" id="main">
      <form onSubmit={submit} className="panel">
        <h1>relayna Studio</h1>
        <p>Authentication is on. Sign in with an API token (ask an admin, or run <code>relayna-studio token create</code>).</p>
        <label htmlFor="token">API token</label>
        <input id="token" type="password" value={token} onChange={(e) => setToken(e.target.value)} autoComplete="current-password" />
        {refused ? <p className="error-note" role="alert">That token was refused.</p> : null}
        <button type="submit" className="primary" disabled={!token.trim()}>
          Sign in
        </button>
      </form>
    </main>
  );
}

function Header({ theme, setTheme }: { theme: Theme; setTheme: (t: Theme) => void }) {
  const { identity, logout } = useAuth();
  return (
    <header className="app-header">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <NavLink to="/" className="brand">
        relayna Studio
      </NavLink>
      <nav aria-label="Main">
        <NavLink to="/" end>
          Overview
        </NavLink>
        <NavLink to="/services">Services</NavLink>
        <NavLink to="/failed-tasks">Failed tasks</NavLink>
        <NavLink to="/tasks/search">Task search</NavLink>
        {allows(identity?.role, "admin") ? <NavLink to="/admin">Audit &amp; tokens</NavLink> : null}
      </nav>
      <div className="header-end">
        {identity ? (
          <span className="identity" title={identity.auth_enabled ? `signed in as ${identity.actor}` : "auth is off"}>
            {identity.auth_enabled ? `${identity.actor} · ${identity.role}` : "auth off"}
          </span>
        ) : null}
        <button type="button" onClick={() => setTheme(theme === "dark" ? "light" : "dark")} aria-label={`Switch to ${theme === "dark" ? "light" : "dark"} theme`}>
          {theme === "dark" ? "Light" : "Dark"}
        </button>
        {identity?.auth_enabled ? (
          <button type="button" onClick={logout}>
            Sign out
          </button>
        ) : null}
      </div>
    </header>
  );
}

export function App() {
  const auth = useAuth();
  const [theme, setTheme] = useState<Theme>(initialTheme);
  const [picked, setPicked] = useState(false);
  useEffect(() => applyTheme(theme, picked), [theme, picked]);
  if (auth.loading) return <Loading what="Studio" />;
  if (auth.needsLogin) return <Login refused={auth.api.token !== null} />;
  return (
    <NowProvider>
      <Header
        theme={theme}
        setTheme={(t) => {
          setPicked(true);
          setTheme(t);
        }}
      />
      <main id="main" className="page">
        {auth.error ? <ErrorNote error={auth.error} title="Studio backend" /> : null}
        <Suspense fallback={<Loading what="page" />}>
          <Routes>
            <Route path="/" element={<Overview />} />
            <Route path="/services" element={<Services />} />
            <Route path="/services/:serviceId" element={<ServiceDetail />} />
            <Route path="/services/:serviceId/topology" element={<Topology />} />
            <Route path="/services/:serviceId/dlq" element={<Dlq />} />
            <Route path="/failed-tasks" element={<FailedTasks />} />
            <Route path="/tasks/search" element={<TaskSearch />} />
            <Route path="/tasks/:serviceId/:taskId" element={<TaskDetail />} />
            <Route path="/admin" element={<Admin />} />
            <Route path="*" element={<Navigate to="/" replace />} />
          </Routes>
        </Suspense>
      </main>
    </NowProvider>
  );
}
