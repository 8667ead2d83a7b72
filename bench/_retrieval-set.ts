// A labelled retrieval set of support tickets, written for bench/retrieval.ts (not a benchmark itself:
// bench/run.ts skips files starting with `_`).
//
// 100 tickets in 10 topics, each with a hand-written *paraphrase* query that describes the same
// problem in other words (as a customer who has not read the ticket would ask), 10 *topic* queries
// (every ticket of the topic is relevant), and *keyword* queries naming an identifier that occurs in
// one ticket only (an error code, a product or feature name). 200 generated distractor tickets —
// plausible text about the same products with no problem of their own — make it 300 documents.
//
// Paraphrase queries avoid the ticket's distinctive words on purpose: they measure meaning. Keyword
// queries measure the opposite: exact identifiers, where lexical matching is strong.

export interface RetrievalDocument {
  readonly id: string
  readonly topic: string
  readonly text: string
}

export interface RetrievalQuery {
  readonly kind: 'paraphrase' | 'topic' | 'keyword'
  readonly text: string
  /** Ids of the relevant documents. */
  readonly relevant: readonly string[]
}

type Ticket = readonly [text: string, paraphrase: string, keyword?: string]

const TICKETS: Record<string, readonly Ticket[]> = {
  login: [
    [
      'Signing in with Okta SSO redirects me back to the sign-in page in an endless loop.',
      'company single sign-on keeps bouncing me to the start screen and never lets me in',
      'Okta SSO',
    ],
    [
      'The password reset email never arrives, I checked spam and requested it three times.',
      'I forgot my credentials and the recovery message is not reaching my inbox',
    ],
    [
      'Two-factor codes from the authenticator app are always rejected as invalid.',
      'the six digit numbers from my phone app for the second verification step do not work',
    ],
    [
      'My account got locked after a few failed attempts and the unlock link is expired.',
      'too many wrong tries disabled my user and the link to reactivate it no longer works',
    ],
    [
      'After changing my email address I can no longer log in with the new one.',
      'updated the address I use as username and now access is refused',
    ],
    [
      'Login fails with error AUTH-4031 on Safari but works on Chrome.',
      'cannot enter my account from the Apple browser although Google’s browser is fine',
      'AUTH-4031',
    ],
    [
      'Session expires every five minutes and I have to sign in again constantly.',
      'I keep getting kicked out after a very short time and must reauthenticate',
    ],
    [
      'Invitation link for a new teammate says the token is invalid.',
      'the join URL I sent to a colleague is refused as broken',
    ],
    [
      'SAML assertion rejected: clock skew between our identity provider and your service.',
      'federated authentication fails because the times on the two servers differ',
      'SAML assertion',
    ],
    [
      'Remember me checkbox does nothing, I am logged out whenever I close the browser.',
      'the option to stay signed in is ignored once the window is closed',
    ],
  ],
  billing: [
    [
      'I was charged twice for the March subscription, please refund the duplicate payment.',
      'my card was billed two times for one month and I want the extra money back',
    ],
    [
      'Invoice INV-88231 shows the wrong VAT number for our company.',
      'the tax identifier printed on our bill is not ours',
      'INV-88231',
    ],
    [
      'Downgrading from the Pro plan to Basic still charges the Pro price.',
      'moved to the cheaper tier but I am still paying the expensive amount',
    ],
    [
      'Credit card payment declined although the card works everywhere else.',
      'my bank card gets refused by your checkout even though it is valid',
    ],
    [
      'Please cancel my subscription and stop the automatic renewal.',
      'I want to end my membership so it does not renew by itself',
    ],
    [
      'The annual discount code SPRING25 was not applied at checkout.',
      'the promotion I entered did not reduce the yearly price',
      'SPRING25',
    ],
    [
      'Need invoices addressed to our finance department instead of my name.',
      'bills should name the accounting team rather than me personally',
    ],
    [
      'Refund for the cancelled order has not reached my account after two weeks.',
      'money for the order I called off still has not come back to my bank',
    ],
    [
      'We were billed for 40 seats but only have 25 active users.',
      'paying for more licences than people actually using the product',
    ],
    [
      'Can I pay by bank transfer instead of credit card?',
      'is wiring the money directly an option rather than using a card',
    ],
  ],
  shipping: [
    [
      'My parcel arrived damaged, the box was crushed and the Beacon device is broken.',
      'the package came smashed and the gadget inside does not work',
    ],
    [
      'Tracking number has shown "label created" for a week with no movement.',
      'the delivery status has been stuck at the first step for days',
    ],
    [
      'The courier left the package at the wrong address.',
      'the delivery driver dropped my order at someone else’s house',
    ],
    [
      'Order 55120 is missing the charging cable that should be in the box.',
      'one of the accessories was not included in what I received',
      'Order 55120',
    ],
    [
      'Customs is holding my shipment and asking for an import duty payment.',
      'the border authority wants fees before releasing my delivery',
    ],
    [
      'I received a Harbor speaker instead of the Pulse headphones I ordered.',
      'the item in the box is a different product from the one I bought',
    ],
    [
      'Can I change the delivery address after the order was placed?',
      'I moved and need the purchase sent somewhere else now',
    ],
    [
      'Express shipping took eight days, I want the express fee back.',
      'paid extra for fast delivery but it came slowly, refund the surcharge',
    ],
    [
      'How do I return an unopened item for an exchange?',
      'want to send back something still sealed and get another one',
    ],
    [
      'The delivery requires a signature but nobody is home during the day.',
      'the carrier needs someone to sign and we are always at work',
    ],
  ],
  mobile: [
    [
      'The Android app crashes as soon as I open the camera to scan a receipt.',
      'the phone application closes itself when I try to take a picture of a bill',
    ],
    [
      'iOS app is stuck on the splash screen after the latest update.',
      'since upgrading, the iPhone program never gets past the opening logo',
    ],
    [
      'Push notifications stopped arriving on my phone.',
      'my mobile no longer alerts me about anything from your service',
    ],
    [
      'The app drains my battery overnight even when it is closed.',
      'my handset is empty every morning because of your software running in the background',
    ],
    [
      'Offline mode loses the notes I wrote without connection.',
      'things I typed while there was no internet disappear later',
    ],
    [
      'Dark mode makes the text in the Quill editor unreadable.',
      'with the black theme the writing area shows letters I cannot see',
      'Quill editor',
    ],
    [
      'App keeps asking for location permission every time it starts.',
      'each launch it requests access to where I am again',
    ],
    [
      'Uploading a photo attachment fails with error MOB-1207 on a slow network.',
      'cannot attach pictures when my connection is weak',
      'MOB-1207',
    ],
    [
      'The tablet layout is cut off in landscape orientation.',
      'on my iPad held sideways part of the screen is missing',
    ],
    [
      'Fingerprint unlock for the app no longer works after I changed phones.',
      'biometric access stopped working on my new device',
    ],
  ],
  data: [
    [
      'CSV export of all tickets times out for our workspace with 80k records.',
      'downloading everything as a spreadsheet file never finishes for a large account',
    ],
    [
      'Importing contacts from Excel drops every row with an accented name.',
      'names with special letters like é vanish when loading our customer list',
    ],
    [
      'The monthly report shows totals that do not match the raw data.',
      'the numbers in the summary differ from the detailed figures',
    ],
    [
      'Deleted a project by mistake, can you restore it from backup?',
      'I accidentally removed a whole workspace folder and need it back',
    ],
    [
      'Dates in the export are in US format, we need ISO 8601.',
      'the downloaded file writes days and months the American way',
    ],
    [
      'Duplicate records appear after every sync with Salesforce.',
      'each time the CRM connection runs we get copies of the same entries',
      'Salesforce',
    ],
    ['Attachments larger than 25 MB fail to upload.', 'big files cannot be added, there seems to be a size limit'],
    [
      'The Atlas dashboard charts are empty since yesterday.',
      'the graphs on my overview page show nothing anymore',
      'Atlas dashboard',
    ],
    [
      'Custom fields are missing from the JSON API export.',
      'our own extra columns are not included when we pull the data programmatically',
    ],
    ['Search does not find tickets by their reference number.', 'looking up a case by its ID returns no results'],
  ],
  notifications: [
    ['I receive every email notification twice.', 'each alert message lands in my mailbox in duplicate'],
    [
      'Daily digest emails stopped after we changed our domain.',
      'since switching our company web address the once-a-day summary no longer comes',
    ],
    [
      'How do I turn off notifications for tickets I am only copied on?',
      'I want fewer alerts about cases where I am just in CC',
    ],
    [
      'Slack notifications go to the wrong channel.',
      'our chat alerts are posted in a different room than configured',
      'Slack',
    ],
    [
      'Emails from your system end up in our spam folder because SPF fails.',
      'your messages are flagged as junk by our mail server due to sender checks',
    ],
    ['Reminder for an overdue task arrived a day late.', 'the alert about a missed deadline came after the fact'],
    [
      'Notification sounds cannot be muted on the desktop client.',
      'there is no way to silence the beeps in the computer application',
    ],
    ['SMS alerts are not delivered to numbers in Brazil.', 'text messages never reach phones in South America'],
    [
      'Unsubscribe link in the newsletter leads to a 404 page.',
      'the opt-out button at the bottom of your marketing mail is broken',
    ],
    [
      'The Relay webhook fires for every draft save, flooding our endpoint.',
      'our server gets hammered by callbacks each time someone edits a draft',
      'Relay webhook',
    ],
  ],
  performance: [
    [
      'The web app is extremely slow to load in the morning, pages take 30 seconds.',
      'at the start of the day everything in the browser takes ages to appear',
    ],
    [
      'Search results take more than ten seconds for simple queries.',
      'finding anything is painfully sluggish even for easy lookups',
    ],
    [
      'The Summit board freezes when a column has more than 500 cards.',
      'the kanban view hangs once a list gets very long',
      'Summit board',
    ],
    [
      'API responses time out with HTTP 504 during our nightly batch job.',
      'our overnight automated process gets gateway errors from your interface',
    ],
    [
      'Typing in the comment box lags by several seconds.',
      'characters appear long after I press the keys when writing a reply',
    ],
    [
      'Dashboard widgets reload constantly and use 100% CPU.',
      'the overview page keeps refreshing itself and my computer fan goes crazy',
    ],
    ['Uploads from our Singapore office are very slow.', 'sending files takes forever for our team in Asia'],
    [
      'The report generator hangs on reports spanning more than a year.',
      'analytics for long periods never finish computing',
    ],
    [
      'Page scroll stutters on the ticket list with many attachments.',
      'moving down the case overview is jerky when items have files',
    ],
    [
      'Rate limit error 429 although we send only a few requests per minute.',
      'we are told we call too often while our traffic is tiny',
      'error 429',
    ],
  ],
  account: [
    [
      'How do I transfer ownership of the workspace to a colleague?',
      'I am leaving and someone else should become the admin of our organisation',
    ],
    ['I want to delete my account and all my personal data.', 'please erase me and everything you store about me'],
    [
      'Cannot change my profile picture, the upload button is greyed out.',
      'the option to replace my avatar image is disabled',
    ],
    ['Time zone setting resets to UTC after every login.', 'my local clock preference keeps reverting to the default'],
    [
      'Need to merge two accounts that I created with different emails.',
      'I accidentally have two profiles and want them combined into one',
    ],
    [
      'Language switched to German by itself and I cannot find the setting.',
      'the interface suddenly shows another language and I do not know how to change it back',
    ],
    [
      'Admin role cannot be removed from a user who left the company.',
      'a former employee still has full permissions and I cannot take them away',
    ],
    [
      'How do I add a second billing contact to our Ledger account?',
      'another person from finance should also receive payment related messages',
      'Ledger account',
    ],
    [
      'Our team name contains a typo and the rename field is locked.',
      'we misspelled our group title and editing it is not possible',
    ],
    [
      'Guest users can see internal notes they should not have access to.',
      'external visitors are able to read private comments meant for staff',
    ],
  ],
  integrations: [
    [
      'The Jira integration stopped syncing comments two days ago.',
      'remarks no longer flow between our issue tracker and your tool',
      'Jira integration',
    ],
    [
      'OAuth token for the Google Drive connector expires every hour.',
      'the link to our cloud file storage keeps needing reauthorisation',
    ],
    [
      'Zapier trigger fires twice for each new ticket.',
      'our automation platform receives every new case two times',
      'Zapier',
    ],
    [
      'REST API returns 401 with a valid API key since the key rotation.',
      'after we replaced our secret credentials the programmatic access is refused',
    ],
    [
      'The Orbit calendar sync creates events in the wrong time zone.',
      'appointments copied to our agenda appear at shifted hours',
      'Orbit calendar',
    ],
    [
      'GraphQL query for custom fields returns null values.',
      'asking the schema based endpoint for our extra attributes gives empty results',
    ],
    [
      'Microsoft Teams bot does not respond in private channels.',
      'the assistant in our corporate chat stays silent in restricted rooms',
    ],
    [
      'Webhook signature verification fails after the update.',
      'we can no longer confirm that your callbacks are authentic',
    ],
    [
      'Need an SDK for Python, is there an official client library?',
      'does an official package exist for using your service from a snake language script',
    ],
    [
      'The Forge plugin marketplace install fails with error INT-550.',
      'adding an extension from the app store does not work',
      'INT-550',
    ],
  ],
  security: [
    [
      'We need a copy of your SOC 2 report for our vendor review.',
      'our procurement team asks for the audit certificate about your controls',
      'SOC 2',
    ],
    [
      'Someone logged into my account from another country.',
      'there was access to my profile from a place abroad that was not me',
    ],
    ['Where is our data stored, do you have EU data residency?', 'can our information stay on servers inside Europe'],
    [
      'Please enforce IP allowlisting for our organisation.',
      'only our office network addresses should be able to reach the account',
    ],
    [
      'A phishing email pretending to be from you asked for my password.',
      'I got a fake message using your name trying to steal my credentials',
    ],
    [
      'Audit log does not show who deleted the customer records.',
      'the activity history is missing the person who removed entries',
    ],
    [
      'Is data encrypted at rest and which key management do you use?',
      'how do you protect stored information and who holds the secrets',
    ],
    [
      'We found a cross-site scripting issue in the ticket title field.',
      'I discovered that malicious code can be injected through the case heading',
    ],
    [
      'Need to sign a data processing agreement under GDPR.',
      'our lawyers require the European privacy contract before we continue',
      'GDPR',
    ],
    [
      'Former employee still has an active API token.',
      'credentials of someone who left still allow programmatic access',
    ],
  ],
}

const TOPIC_QUERIES: Record<string, string> = {
  login: 'problems signing in and authentication',
  billing: 'questions about invoices, payments and charges',
  shipping: 'delivery and parcel problems',
  mobile: 'issues with the phone app',
  data: 'import, export and data problems',
  notifications: 'email and alert notifications',
  performance: 'the product is slow',
  account: 'account and profile settings',
  integrations: 'connecting with other tools and APIs',
  security: 'security, privacy and compliance',
}

// Distractors: about the same products and areas, with no problem and no ticket's identifier.
const PRODUCTS = ['Ledger', 'Beacon', 'Atlas', 'Quill', 'Harbor', 'Pulse', 'Relay', 'Summit', 'Orbit', 'Forge']
const OPENINGS = [
  'Thanks for the quick help last week',
  'Just a general question',
  'Feedback from our team',
  'Following up on our call',
  'Quick note from the office',
]
const BODIES = [
  'we would like to know when the next version of {p} is planned',
  'the new {p} design looks great and the team likes it',
  'could you send us the product sheet for {p} for our records',
  'we are considering buying more {p} licences next quarter',
  'is there a webinar about getting started with {p}',
  'our manager asked whether {p} has a public roadmap',
  'we plan to present {p} at our internal meeting on Friday',
  'please add our new colleague to the {p} newsletter',
  'what are the opening hours of your support line for {p}',
  'can you recommend training material about {p} for beginners',
]
const CLOSINGS = ['no rush, have a nice day.', 'best regards.', 'thanks in advance.', 'cheers.']

/** The 300 documents and the queries, deterministic. */
export function retrievalSet(): { documents: RetrievalDocument[]; queries: RetrievalQuery[] } {
  const documents: RetrievalDocument[] = []
  const queries: RetrievalQuery[] = []
  for (const [topic, tickets] of Object.entries(TICKETS)) {
    tickets.forEach(([text, paraphrase, keyword], i) => {
      const id = `${topic}-${i}`
      documents.push({ id, topic, text })
      queries.push({ kind: 'paraphrase', text: paraphrase, relevant: [id] })
      if (keyword) queries.push({ kind: 'keyword', text: `${keyword} problem`, relevant: [id] })
    })
    queries.push({
      kind: 'topic',
      text: TOPIC_QUERIES[topic],
      relevant: tickets.map((_, i) => `${topic}-${i}`),
    })
  }
  for (let i = 0; i < 200; i++) {
    const p = PRODUCTS[i % PRODUCTS.length]
    const body = BODIES[Math.floor(i / PRODUCTS.length) % BODIES.length].replace('{p}', p)
    const text = `${OPENINGS[(i + Math.floor(i / 100)) % OPENINGS.length]}: ${body}, ${CLOSINGS[(i + Math.floor(i / 100)) % CLOSINGS.length]}`
    documents.push({ id: `other-${i}`, topic: 'other', text })
  }
  return { documents, queries }
}
