/** Whether a listening address is reachable only from this machine. */
import net from 'node:net';

export function isLoopbackAddress(host: string): boolean {
  if (host === 'localhost') return true;
  const address = host.replace(/^::ffff:/i, '');
  if (net.isIPv4(address)) return address.startsWith('127.');
  return net.isIPv6(host) && /^(?:0{0,4}:){7}0{0,3}1$|^::1$/.test(host);
}

/** The start-up warning of a registry without authentication that others can reach. */
export const OPEN_REGISTRY_WARNING =
  'AUTHENTICATION IS OFF (auth.mode: none) AND THE REGISTRY IS REACHABLE FROM THE NETWORK: anyone who can connect may pull, push and delete anything. Set REGISTRY_AUTH=token, or listen on 127.0.0.1 only.';
