// Package block responds at the edge: it lists the source addresses of
// alerts in a Cloudflare account IP list, which a WAF custom rule on the
// zone (`ip.src in $LIST`, made by `raywatch cloudflare connect
// --block-list`) blocks or challenges, and takes them off again when their
// time is up.
//
// A [Blocker] is an output of the notification dispatcher
// ([notify.Output]): the commit of an alert queues a delivery job for it
// in the same transaction, so that no block is lost when Cloudflare is
// down or raywatch stops, and a failed list operation is retried through
// the outbox with backoff. Its state (what is listed until when, and the
// audit trail of every block, extension, unblock and expiry) lives in the
// store; [Blocker.Run] expires entries. People block and unblock by hand
// through [Blocker.Block] and [Blocker.Unblock].
package block

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/cloudflare"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/notify"
	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/store"
)

// OutputName is the block list's queue in the outbox, and its name among
// the outputs.
const OutputName = "block"

// AllRules, as the only entry of Options.Rules, lets every rule's alerts
// list their source.
const AllRules = "*"

// Errors of [Blocker.Block] and [Blocker.Unblock].
var (
	// ErrRefused wraps the reason an address may not be listed (private,
	// Cloudflare's, --block-never) or is not an address.
	ErrRefused = errors.New("refused")
	// ErrNotListed is returned by Unblock for an address not on the list.
	ErrNotListed = errors.New("not on the block list")
)

// Store keeps the block list's state; *store.Store implements it.
type Store interface {
	ApplyBlocks(ctx context.Context, c store.BlockChange) error
	BlockState(ctx context.Context) ([]store.BlockEntry, []store.BlockHold, error)
	BlockAuditTrail(ctx context.Context, address string, limit int) ([]store.BlockAudit, error)
}

// Lists is Cloudflare's Lists API; *cloudflare.Client implements it.
type Lists interface {
	ZoneAccount(ctx context.Context, zone string) (string, error)
	FindIPList(ctx context.Context, account, name string) (cloudflare.IPList, bool, error)
	CreateIPList(ctx context.Context, account, name, description string) (cloudflare.IPList, error)
	ListItems(ctx context.Context, l cloudflare.IPList) ([]cloudflare.ListItem, error)
	AddListItems(ctx context.Context, l cloudflare.IPList, items []cloudflare.ListItem) error
	DeleteListItems(ctx context.Context, l cloudflare.IPList, ids []string) error
}

// Options configures a [Blocker].
type Options struct {
	// List is the name of the account IP list (--block-list).
	List string
	// Account is the account that holds the list (CLOUDFLARE_ACCOUNT_ID);
	// "" means the account of Zone.
	Account string
	// Zone is a zone of the account (RAYWATCH_CLOUDFLARE_ZONE), to find
	// the account when Account is "".
	Zone string
	// MinLevel is the lowest level of the alerts that list their source;
	// "" means high.
	MinLevel string
	// Rules are the ids of the rules whose alerts list their source
	// (--block-rules); [AllRules] means every rule. It must not be empty.
	Rules []string
	// TTL is how long an address stays listed after its last alert; 0
	// means 24 hours. It is also how long the rules leave alone an address
	// that a person unblocked.
	TTL time.Duration
	// Never are ranges never listed (--block-never), besides the private,
	// loopback and other special ranges and Cloudflare's own.
	Never []netip.Prefix
	// DryRun logs and records what would be listed, and never calls
	// Cloudflare.
	DryRun bool
	// Max bounds the addresses listed at once; beyond it the entries that
	// expire first make room. 0 means 1,000.
	Max int
	// MinInterval is the least time between two changes of the list on
	// Cloudflare (which allows 30,000 list-changing requests in 12 hours,
	// one bulk operation at a time); 0 means 2 seconds.
	MinInterval time.Duration
	// ExpiryInterval is how often [Blocker.Run] takes expired entries off;
	// 0 means 1 minute.
	ExpiryInterval time.Duration
	// Logger receives the logs; nil means slog.Default.
	Logger *slog.Logger
	// Now tells the time; nil means time.Now.
	Now func() time.Time
}

var levelRank = map[string]int{"informational": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}

// Validate checks the options, naming the flag at fault. Without
// DryRun, Lists is needed and Account or Zone must be set.
func (o *Options) Validate() error {
	var errs []error
	if err := cloudflare.CheckListName("--block-list", o.List); err != nil {
		errs = append(errs, err)
	}
	if _, ok := levelRank[strings.ToLower(o.minLevel())]; !ok {
		errs = append(errs, fmt.Errorf("--block-min-level %q: want informational, low, medium, high or critical", o.MinLevel))
	}
	if len(o.Rules) == 0 {
		errs = append(errs, errors.New("--block-rules is empty"))
	}
	if o.TTL < 0 || o.Max < 0 {
		errs = append(errs, errors.New("--block-ttl and --block-max cannot be negative"))
	}
	if o.TTL > 0 && o.TTL < time.Minute {
		errs = append(errs, fmt.Errorf("--block-ttl %s: at least 1m", o.TTL))
	}
	if !o.DryRun && o.Account == "" && o.Zone == "" {
		errs = append(errs, errors.New("--block-list needs the account of the list: set CLOUDFLARE_ACCOUNT_ID, or RAYWATCH_CLOUDFLARE_ZONE to use the zone's account"))
	}
	return errors.Join(errs...)
}

func (o *Options) minLevel() string {
	if o.MinLevel == "" {
		return "high"
	}
	return o.MinLevel
}

// Accepts reports whether an alert lists its source: its rule is one of
// Rules and its level at least MinLevel. It suits store.Options'
// OutboxFilter for the output [OutputName]; it is safe for concurrent use.
func (o *Options) Accepts(a *alert.Alert) bool {
	if levelRank[strings.ToLower(a.Rule.Level)] < levelRank[strings.ToLower(o.minLevel())] {
		return false
	}
	return slices.Contains(o.Rules, AllRules) || slices.Contains(o.Rules, a.Rule.ID)
}

// Blocker keeps the block list. Create it with [New]; run [Blocker.Run]
// for the expiry; hand it to the notification dispatcher as an extra
// output (notify.Options.Extra). Its methods are safe for concurrent use.
type Blocker struct {
	opts  Options
	st    Store
	cf    Lists // nil in a dry run without credentials
	log   *slog.Logger
	never []exclusion

	// mu serializes the changes: each reads the state, changes
	// Cloudflare's list, then records the change.
	mu        sync.Mutex
	list      *cloudflare.IPList // resolved on first use
	lastWrite time.Time

	smu         sync.Mutex
	lastErr     string
	lastErrAt   time.Time
	evicted     int64
	lastEvicted time.Time
}

// New returns a Blocker over the state st and Cloudflare's lists cf
// (which may be nil only with DryRun). It calls nothing: the list is
// found, or created, on first use.
func New(opts Options, st Store, cf Lists) (*Blocker, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if cf == nil && !opts.DryRun {
		return nil, errors.New("block: no Cloudflare client and not a dry run")
	}
	if opts.TTL == 0 {
		opts.TTL = 24 * time.Hour
	}
	if opts.Max == 0 {
		opts.Max = 1000
	}
	if opts.MinInterval == 0 {
		opts.MinInterval = 2 * time.Second
	}
	if opts.ExpiryInterval <= 0 {
		opts.ExpiryInterval = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.MinLevel = strings.ToLower(opts.minLevel())
	b := &Blocker{opts: opts, st: st, cf: cf, log: opts.Logger.With("component", "block", "list", opts.List)}
	b.never = append(append(b.never, specialRanges...), cloudflareExclusions...)
	for _, p := range opts.Never {
		b.never = append(b.never, exclusion{p, "in --block-never (" + p.String() + ")"})
	}
	return b, nil
}

func (b *Blocker) now() time.Time { return b.opts.Now().UTC() }

// Excluded returns why the address p may never be listed, or "".
func (b *Blocker) Excluded(p netip.Prefix) string {
	for _, x := range b.never {
		if x.p.Overlaps(p) {
			return x.reason
		}
	}
	return ""
}

// Name, Type, Target, MinLevel and Accepts make the Blocker a
// notify.Output.
func (b *Blocker) Name() string { return OutputName }

// Type is "block".
func (b *Blocker) Type() string { return "block" }

// Target names the list.
func (b *Blocker) Target() string {
	t := "Cloudflare list " + b.opts.List
	if b.opts.DryRun {
		t += " (dry run)"
	}
	return t
}

// MinLevel is --block-min-level.
func (b *Blocker) MinLevel() string { return b.opts.MinLevel }

// Accepts is [Options.Accepts].
func (b *Blocker) Accepts(a *alert.Alert) bool { return b.opts.Accepts(a) }

// Send lists the source addresses of the alerts of ds (or extends their
// time on the list), all or none: on an error nothing of ds is recorded
// and the outbox retries them. Status changes list nothing.
func (b *Blocker) Send(ctx context.Context, ds []notify.Delivery) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, err := b.loadState(ctx)
	if err != nil {
		return 0, err
	}
	now := b.now()
	var c change
	for i := range ds {
		if ds[i].Job.Kind == store.KindStatus {
			continue
		}
		b.planAlert(&c, s, &ds[i].Alert, ds[i].Job.Kind == store.KindNew, now)
	}
	if err := b.apply(ctx, &c, s, now); err != nil {
		b.failed(err)
		if d := cloudflare.RetryAfter(err); d > 0 {
			return 0, notify.RetryLater(err, d)
		}
		return 0, err
	}
	b.succeeded()
	return len(ds), nil
}

// planAlert plans the listing of a's source address.
func (b *Blocker) planAlert(c *change, s *state, a *alert.Alert, isNew bool, now time.Time) {
	ip := SourceAddress(a.Event)
	log := b.log.With("alert_id", a.ID, "rule", a.Rule.ID)
	if ip == "" {
		log.Debug("alert has no source address: nothing to list")
		return
	}
	p, addr, err := Address(ip)
	if err != nil {
		log.Debug("source address not listed", "err", err)
		return
	}
	if why := b.Excluded(p); why != "" {
		if isNew {
			log.Info("source address never listed", "address", addr, "why", why)
		}
		return
	}
	if h, ok := s.holds[addr]; ok && h.Until.After(now) {
		log.Debug("source address unblocked by hand: not listed again before the hold ends", "address", addr, "until", h.Until, "by", h.Who)
		return
	}
	until := now.Add(b.opts.TTL)
	if e, ok := s.entries[addr]; ok {
		if !until.After(e.Until) {
			return
		}
		e.Until = until
		if e.Alert != a.ID {
			e.Alert, e.Rule = a.ID, a.Rule.ID
			c.audit = append(c.audit, store.BlockAudit{At: now, Action: store.BlockActionExtend, Address: addr,
				Who: "rule:" + a.Rule.ID, Rule: a.Rule.ID, Alert: a.ID, Until: until, DryRun: e.DryRun,
				Reason: fmt.Sprintf("seen again: %s (alert %s)", a.Rule.Title, a.ID)})
		}
		c.put(e)
		return
	}
	e := &store.BlockEntry{
		Address: addr, Listed: now, Until: until, Who: "rule:" + a.Rule.ID, Rule: a.Rule.ID, Alert: a.ID,
		Reason:  fmt.Sprintf("%s (level %s, alert %s)", a.Rule.Title, a.Rule.Level, a.ID),
		Comment: itemComment(fmt.Sprintf("raywatch: rule %s alert %s: %s", a.Rule.ID, a.ID, a.Rule.Title)),
		DryRun:  b.opts.DryRun,
	}
	s.entries[addr] = e
	c.add(e)
	c.audit = append(c.audit, store.BlockAudit{At: now, Action: store.BlockActionBlock, Address: addr, Who: e.Who,
		Rule: e.Rule, Alert: e.Alert, Reason: e.Reason, Until: until, DryRun: e.DryRun})
	if b.opts.DryRun {
		log.Info("dry run: would list the source address", "address", addr, "until", until)
	} else {
		log.Info("listing the source address", "address", addr, "until", until)
	}
}

// itemComment bounds a list item's comment.
func itemComment(s string) string {
	if len(s) <= 200 {
		return s
	}
	cut := 197
	for cut > 0 && (s[cut]&0xC0) == 0x80 {
		cut--
	}
	return s[:cut] + "..."
}

// failed records a failure for the report; it logs when the list goes
// from working to failing.
func (b *Blocker) failed(err error) {
	b.smu.Lock()
	was := b.lastErr
	b.lastErr, b.lastErrAt = err.Error(), b.now()
	b.smu.Unlock()
	if was == "" {
		b.log.Warn("the block list cannot be changed; retrying", "err", err)
	}
}

func (b *Blocker) succeeded() {
	b.smu.Lock()
	was := b.lastErr
	b.lastErr = ""
	b.smu.Unlock()
	if was != "" {
		b.log.Info("the block list can be changed again")
	}
}

// cleanErr drops the URL of an HTTP client's error (it may name a proxy
// with credentials).
func cleanErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		var ne net.Error
		if errors.As(ue.Err, &ne) && ne.Timeout() {
			return fmt.Errorf("call the Cloudflare API: timeout: %w", ue.Err)
		}
		return fmt.Errorf("call the Cloudflare API: %w", ue.Err)
	}
	return err
}
