package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"
)

var errRangeOrder = errors.New("--to is before --from")

// Object is one Logpush object (a file or an S3 object) of a replay.
type Object struct {
	// Name identifies the object in messages and in the resume state: the
	// file's path as found below the source folder, or s3://BUCKET/KEY.
	Name string `json:"name"`
	// Size is the stored (usually gzip'd) size in bytes.
	Size int64 `json:"size"`
	// Start and End are the time range the name carries, zero when the
	// name carries none (see [ParseName]).
	Start time.Time `json:"start,omitzero"`
	End   time.Time `json:"end,omitzero"`

	src source
	key string // path for files, key for S3
}

// source lists and opens the objects of one SOURCE argument.
type source interface {
	// list calls emit for each object below the source, in name order,
	// except those the range rules out by their folder or name; it counts
	// those in pruned.
	list(ctx context.Context, rng Range, emit func(Object), pruned *int) error
	// open returns the object's stored bytes.
	open(ctx context.Context, obj Object) (io.ReadCloser, error)
	// remote reports whether open goes over the network (and so is worth
	// doing ahead, into a temporary file).
	remote() bool
}

// keep reports whether an object named name is read: it is no Logpush
// ownership-challenge or hidden file, and its name's time range (if any)
// meets rng.
func keep(name string, rng Range, pruned *int) (start, end time.Time, ok bool) {
	base := filepath.Base(name)
	if strings.HasPrefix(base, ".") || strings.HasPrefix(base, "ownership-challenge") {
		return time.Time{}, time.Time{}, false
	}
	start, end, named := ParseName(base)
	if named && !rng.overlaps(start, end) {
		*pruned++
		return time.Time{}, time.Time{}, false
	}
	return start, end, true
}

// localSource is a folder (walked recursively) or a single file.
type localSource struct {
	root string
	dir  bool
}

func (l *localSource) remote() bool { return false }

func (l *localSource) list(ctx context.Context, rng Range, emit func(Object), pruned *int) error {
	if !l.dir {
		fi, err := os.Stat(l.root)
		if err != nil {
			return err
		}
		if start, end, ok := keep(l.root, rng, pruned); ok {
			emit(Object{Name: l.root, Size: fi.Size(), Start: start, End: end, src: l, key: l.root})
		}
		return nil
	}
	return filepath.WalkDir(l.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			if day, ok := parseDay(d.Name()); ok && p != l.root && rng.skipDay(day) {
				*pruned++
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		start, end, ok := keep(p, rng, pruned)
		if !ok {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		emit(Object{Name: p, Size: fi.Size(), Start: start, End: end, src: l, key: p})
		return nil
	})
}

func (l *localSource) open(_ context.Context, obj Object) (io.ReadCloser, error) {
	return os.Open(obj.key)
}

// s3API is the part of the S3 client a replay uses.
type s3API interface {
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// sdkLogger passes the AWS SDK's log lines to slog at debug level.
type sdkLogger struct{ log *slog.Logger }

func (l sdkLogger) Logf(class logging.Classification, format string, v ...any) {
	if l.log != nil {
		l.log.Debug(fmt.Sprintf(format, v...), "component", "aws-sdk", "class", string(class))
	}
}

// s3Source is s3://BUCKET/PREFIX.
type s3Source struct {
	client s3API
	bucket string
	prefix string
}

func (s *s3Source) remote() bool { return true }

// parseS3 splits s3://BUCKET/PREFIX.
func parseS3(arg string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(arg, "s3://")
	if !ok {
		return "", "", fmt.Errorf("source %q: not an s3:// URL", arg)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("source %q: no bucket (want s3://BUCKET/PREFIX)", arg)
	}
	return bucket, prefix, nil
}

// newS3Client builds an S3 client from the usual AWS environment and shared
// configuration. A custom endpoint (opts.S3Endpoint, else AWS_ENDPOINT_URL
// or AWS_ENDPOINT_URL_S3 as the SDK reads them) is addressed path-style, as
// R2, MinIO and most S3-compatible stores expect.
func newS3Client(ctx context.Context, opts Options) (*s3.Client, error) {
	var lopts []func(*config.LoadOptions) error
	if opts.S3Region != "" {
		lopts = append(lopts, config.WithRegion(opts.S3Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, lopts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		// R2 takes us-east-1 as an alias of its "auto" region; MinIO and
		// GCS's S3 interface default to it.
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.S3Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.S3Endpoint)
		}
		if o.BaseEndpoint != nil {
			o.UsePathStyle = true
		}
		if opts.HTTPClient != nil {
			o.HTTPClient = opts.HTTPClient
		}
		// gzip's CRC already checks each object end to end; the SDK's
		// own validation only logs a warning per object on stores that
		// send no checksum (R2, MinIO, GCS).
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.Logger = sdkLogger{opts.Logger}
	})
	return client, nil
}

func (s *s3Source) url(key string) string { return "s3://" + s.bucket + "/" + key }

func (s *s3Source) list(ctx context.Context, rng Range, emit func(Object), pruned *int) error {
	if s.prefix == "" || strings.HasSuffix(s.prefix, "/") {
		return s.walk(ctx, s.prefix, rng, emit, pruned)
	}
	// s3://BUCKET/logs is the object "logs" or the folder "logs/", not
	// "logs2/".
	return s.page(ctx, s.prefix, func(key string, size int64) {
		if key == s.prefix {
			if start, end, ok := keep(key, rng, pruned); ok {
				emit(Object{Name: s.url(key), Size: size, Start: start, End: end, src: s, key: key})
			}
		}
	}, func(p string) error {
		if p == s.prefix+"/" {
			return s.walk(ctx, p, rng, emit, pruned)
		}
		return nil
	})
}

// walk lists the objects below prefix, a folder at a time, so that daily
// folders outside the range are never listed.
func (s *s3Source) walk(ctx context.Context, prefix string, rng Range, emit func(Object), pruned *int) error {
	return s.page(ctx, prefix, func(key string, size int64) {
		if strings.HasSuffix(key, "/") {
			return // a folder marker
		}
		if start, end, ok := keep(key, rng, pruned); ok {
			emit(Object{Name: s.url(key), Size: size, Start: start, End: end, src: s, key: key})
		}
	}, func(p string) error {
		name := strings.TrimSuffix(strings.TrimPrefix(p, prefix), "/")
		if day, ok := parseDay(name); ok && rng.skipDay(day) {
			*pruned++
			return nil
		}
		return s.walk(ctx, p, rng, emit, pruned)
	})
}

// page lists prefix with the delimiter "/", calling obj for each object
// and folder for each common prefix. The folders of a page are visited
// after its objects; S3 lists keys in byte order, and a folder "a/" sorts
// after the objects "a..." of the same page only by accident, so the
// caller's order is made deterministic by sorting the plan (see Open).
func (s *s3Source) page(ctx context.Context, prefix string, obj func(key string, size int64), folder func(prefix string) error) error {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Delimiter: aws.String("/")}
	if prefix != "" {
		in.Prefix = aws.String(prefix)
	}
	p := s3.NewListObjectsV2Paginator(s.client, in)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list s3://%s/%s: %w", s.bucket, prefix, err)
		}
		for _, o := range out.Contents {
			obj(aws.ToString(o.Key), aws.ToInt64(o.Size))
		}
		for _, cp := range out.CommonPrefixes {
			if err := folder(aws.ToString(cp.Prefix)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *s3Source) open(ctx context.Context, obj Object) (io.ReadCloser, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(obj.key)})
	if err != nil {
		return nil, err
	}
	return out.Body, nil
}
