/**
 * Support-ticket prose with seeded personal data, so the governance stage has something real to
 * redact: emails, phone numbers, Luhn-valid card numbers and IBANs inside ordinary sentences.
 * Texts range from one line to several paragraphs (long ones exercise chunking).
 */
import type { SeededRandom } from './random.ts'

const FIRST = [
  'Ada',
  'Grace',
  'Linus',
  'Margaret',
  'Ken',
  'Barbara',
  'Dennis',
  'Radia',
  'Tim',
  'Frances',
  'Edsger',
  'Hedy',
]
const LAST = [
  'Lovelace',
  'Hopper',
  'Torvalds',
  'Hamilton',
  'Thompson',
  'Liskov',
  'Ritchie',
  'Perlman',
  'Berners-Lee',
  'Allen',
  'Dijkstra',
  'Lamarr',
]
const DOMAINS = ['example.com', 'mail.example.org', 'corp.example.net']
const PROBLEMS = [
  'the export to CSV stops at 10,000 rows',
  "the dashboard shows yesterday's numbers after the nightly sync",
  'login with SSO loops back to the sign-in page',
  'the mobile app crashes when I attach a photo',
  'invoices are generated twice for the same order',
  'search returns nothing for product names with accents',
  'the webhook retries forever after a 410 response',
  'two-factor codes arrive several minutes late',
  'the printer connector drops jobs larger than 20 pages',
  'scheduled reports are sent in the wrong time zone',
]
const STEPS = [
  'I restarted the application and cleared the cache.',
  'The problem started after the last update.',
  'It happens on every browser we tried.',
  'Our team of twelve people is blocked by this.',
  'A colleague in another office cannot reproduce it.',
  'We rolled back our own configuration change, with no effect.',
  'The status page did not report any incident.',
  'Logs show a timeout after about thirty seconds.',
]
const CLOSINGS = [
  'Thanks for looking into it.',
  'Please advise.',
  'This is urgent for our quarter close.',
  'Happy to share more details on a call.',
]

export function personName(rng: SeededRandom): string {
  return `${rng.pick(FIRST)} ${rng.pick(LAST)}`
}

export function email(rng: SeededRandom, name = personName(rng)): string {
  return `${name.toLowerCase().replace(/[^a-z]+/g, '.')}${rng.int(1, 99)}@${rng.pick(DOMAINS)}`
}

export function phone(rng: SeededRandom): string {
  return rng.chance(0.5)
    ? `+44 20 ${rng.digits(4)} ${rng.digits(4)}`
    : `(${rng.int(201, 989)}) ${rng.digits(3)}-${rng.digits(4)}`
}

/** A 16-digit card number with a valid Luhn check digit, printed in groups of four. */
export function cardNumber(rng: SeededRandom): string {
  const digits = [4, ...Array.from({ length: 14 }, () => rng.int(0, 9))]
  let sum = 0
  for (let i = 0; i < 15; i++) {
    let d = digits[14 - i]
    if (i % 2 === 0) d = d * 2 > 9 ? d * 2 - 9 : d * 2
    sum += d
  }
  digits.push((10 - (sum % 10)) % 10)
  return digits.join('').replace(/(\d{4})(?=\d)/g, '$1 ')
}

/** A German IBAN with valid mod-97 check digits. */
export function iban(rng: SeededRandom): string {
  const bban = rng.digits(18)
  const numeric = `${bban}131400` // "DE" → 13 14, then "00"
  let remainder = 0
  for (const c of numeric) remainder = (remainder * 10 + Number(c)) % 97
  const check = String(98 - remainder).padStart(2, '0')
  return `DE${check}${bban}`.replace(/(.{4})(?=.)/g, '$1 ')
}

export interface TicketText {
  readonly subject: string
  readonly body: string
}

/** One ticket: subject + body of 1 to ~12 paragraphs, with personal data at a seeded rate. */
export function ticketText(rng: SeededRandom, customerName: string, productName: string): TicketText {
  const problem = rng.pick(PROBLEMS)
  const subject = `${productName}: ${problem}`
  const paragraphs: string[] = [`Hello support, ${problem} in ${productName}.`]
  const long = rng.chance(0.2)
  const count = long ? rng.int(4, 12) : rng.int(0, 2)
  for (let i = 0; i < count; i++) {
    const sentences = Array.from({ length: rng.int(2, 6) }, () => rng.pick(STEPS))
    paragraphs.push(sentences.join(' '))
  }
  if (rng.chance(0.5)) paragraphs.push(`You can reach me at ${email(rng, customerName)} or ${phone(rng)}.`)
  if (rng.chance(0.15)) paragraphs.push(`The charge on card ${cardNumber(rng)} was taken twice.`)
  if (rng.chance(0.1)) paragraphs.push(`Please refund to IBAN ${iban(rng)}.`)
  paragraphs.push(`${rng.pick(CLOSINGS)}\n${customerName}`)
  return { subject, body: paragraphs.join('\n\n') }
}
