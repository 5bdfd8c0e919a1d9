// Who is using Studio: the token (when auth is on), the role, and the API
// client built with it. The token lives in sessionStorage only (this tab).
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { createContext, useCallback, useContext, useMemo, useState, type ReactNode } from "react";
import { ApiError, createApi, type Api } from "./api";
import type { Identity, Role } from "./types";

const STORAGE_KEY = "relayna-studio-token";

interface AuthState {
  api: Api;
  identity: Identity | null;
  /** True when the backend refused the request for lack of (a valid) token. */
  needsLogin: boolean;
  loading: boolean;
  error: unknown;
  login: (token: string) => void;
  logout: () => void;
}

const AuthContext = createContext<AuthState | null>(null);

const RANK: Record<Role, number> = { reader: 1, operator: 2, admin: 3 };

/** Whether `role` may do what needs `needed` (admin ⊃ operator ⊃ reader). */
export function allows(role: Role | null | undefined, needed: Role): boolean {
  return role ? RANK[role] >= RANK[needed] : false;
}

/** A backend without the auth routes (auth off, older Studio): everything is allowed. */
const OPEN: Identity = { auth_enabled: false, actor: "local", role: "admin" };

function storedToken(): string | null {
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

export function AuthProvider({ children, fetchImpl }: { children: ReactNode; fetchImpl?: typeof fetch }) {
  const [token, setToken] = useState<string | null>(storedToken);
  const queryClient = useQueryClient();
  const api = useMemo(() => createApi({ token, fetch: fetchImpl }), [token, fetchImpl]);
  const who = useQuery({
    queryKey: ["whoami", token],
    queryFn: async () => {
      try {
        return await api.whoami();
      } catch (err) {
        if (err instanceof ApiError && (err.status === 404 || err.status === 405)) return OPEN;
        throw err;
      }
    },
    retry: false,
    staleTime: Infinity,
  });
  const login = useCallback(
    (value: string) => {
      try {
        sessionStorage.setItem(STORAGE_KEY, value);
      } catch {
        // storage disabled: the token lives for this page only
      }
      queryClient.clear();
      setToken(value);
    },
    [queryClient],
  );
  const logout = useCallback(() => {
    try {
      sessionStorage.removeItem(STORAGE_KEY);
    } catch {
      // nothing stored
    }
    queryClient.clear();
    setToken(null);
  }, [queryClient]);
  const refused = who.error instanceof ApiError && (who.error.status === 401 || who.error.status === 403);
  const value: AuthState = {
    api,
    identity: who.data ?? null,
    needsLogin: refused,
    loading: who.isPending,
    error: refused ? null : who.error,
    login,
    logout,
  };
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthState {
  const value = useContext(AuthContext);
  if (!value) throw new Error("useAuth outside AuthProvider");
  return value;
}

export function useApi(): Api {
  return useAuth().api;
}

/** Whether the current user may do something that needs `role`. */
export function useCan(role: Role): boolean {
  return allows(useAuth().identity?.role, role);
}
