/**
 * Credentials never reach a message. Any `scheme://user:password@host` in any text (an error from a
 * client library that echoes the URL it was given, a log line, a hint) loses its password before it
 * is shown; RagstreamError applies this to every message and hint, so one place covers them all.
 */

// scheme://[user]:password@ — the password is whatever comes before the last `@` of the authority.
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/?#@:]*):([^\s/?#]*)@/gi

/** `text` with the password of every URL in it replaced by `***` (the user name stays: it says who connected). */
export function maskCredentials(text: string): string {
  return text.replace(URL_CREDENTIALS, (_, scheme: string, user: string) => `${scheme}${user}:***@`)
}

/**
 * Splits a URL with credentials into the URL without them and the credentials, for clients that take
 * them separately (an HTTP client must not put them in the URL: fetch refuses such a URL and its error
 * message quotes it whole).
 */
export function splitCredentials(url: string): {
  readonly url: string
  readonly username?: string
  readonly password?: string
} {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return { url }
  }
  if (!parsed.username && !parsed.password) return { url }
  const username = decodeURIComponent(parsed.username)
  const password = decodeURIComponent(parsed.password)
  parsed.username = ''
  parsed.password = ''
  return { url: parsed.toString().replace(/\/+$/, ''), username, password }
}

/** The URL without credentials and, when it had some, the Basic `authorization` header carrying them. */
export function basicAuth(url: string): { readonly url: string; readonly headers: Record<string, string> } {
  const split = splitCredentials(url)
  if (split.username === undefined) return { url: split.url, headers: {} }
  const token = Buffer.from(`${split.username}:${split.password ?? ''}`).toString('base64')
  return { url: split.url, headers: { authorization: `Basic ${token}` } }
}
