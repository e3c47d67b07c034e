package block

// Cloudflare's own address ranges, as Cloudflare publishes them at
// https://www.cloudflare.com/ips-v4 and https://www.cloudflare.com/ips-v6
// (copied from those pages; add here any range Cloudflare adds). Requests from a
// Worker, from Cloudflare's proxies and from its health checks come from
// these: raywatch never lists them, whatever --block-never says.
var (
	CloudflareIPv4 = []string{
		"173.245.48.0/20",
		"103.21.244.0/22",
		"103.22.200.0/22",
		"103.31.4.0/22",
		"141.101.64.0/18",
		"108.162.192.0/18",
		"190.93.240.0/20",
		"188.114.96.0/20",
		"197.234.240.0/22",
		"198.41.128.0/17",
		"162.158.0.0/15",
		"104.16.0.0/13",
		"104.24.0.0/14",
		"172.64.0.0/13",
		"131.0.72.0/22",
	}
	CloudflareIPv6 = []string{
		"2400:cb00::/32",
		"2606:4700::/32",
		"2803:f800::/32",
		"2405:b500::/32",
		"2405:8100::/32",
		"2a06:98c0::/29",
		"2c0f:f248::/32",
	}
)
