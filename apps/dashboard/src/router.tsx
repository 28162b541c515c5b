import { type MouseEvent, type ReactNode, useEffect, useState } from 'react';

/** A few pages under /ui, in the address bar (history API): reloadable and linkable. */
export type Route =
  | { page: 'tasks' }
  | { page: 'task'; id: string }
  | { page: 'queue' }
  | { page: 'run' }
  | { page: 'schedules' }
  | { page: 'webhooks' }
  | { page: 'usage' }
  | { page: 'unknown'; path: string };

export const BASE = '/ui';

export function parse(pathname: string): Route {
  const rest = pathname.startsWith(BASE) ? pathname.slice(BASE.length) : pathname;
  const parts = rest.split('/').filter(Boolean);
  if (parts.length === 0 || (parts.length === 1 && parts[0] === 'tasks')) return { page: 'tasks' };
  if (parts.length === 2 && parts[0] === 'tasks' && parts[1]) return { page: 'task', id: parts[1] };
  if (parts.length === 1 && parts[0] === 'queue') return { page: 'queue' };
  if (parts.length === 1 && parts[0] === 'run') return { page: 'run' };
  if (parts.length === 1 && parts[0] === 'schedules') return { page: 'schedules' };
  if (parts.length === 1 && parts[0] === 'webhooks') return { page: 'webhooks' };
  if (parts.length === 1 && parts[0] === 'usage') return { page: 'usage' };
  return { page: 'unknown', path: pathname };
}

export function navigate(to: string) {
  window.history.pushState(null, '', `${BASE}${to}`);
  window.dispatchEvent(new PopStateEvent('popstate'));
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parse(window.location.pathname));
  useEffect(() => {
    const update = () => setRoute(parse(window.location.pathname));
    window.addEventListener('popstate', update);
    return () => window.removeEventListener('popstate', update);
  }, []);
  return route;
}

export function Link({ to, children, className }: { to: string; children: ReactNode; className?: string }) {
  const onClick = (event: MouseEvent<HTMLAnchorElement>) => {
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    navigate(to);
  };
  return (
    <a href={`${BASE}${to}`} onClick={onClick} className={className}>
      {children}
    </a>
  );
}
