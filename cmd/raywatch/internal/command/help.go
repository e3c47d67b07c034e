package command

import (
	"fmt"
	"io"
)

const usage = `raywatch: detection engine for Cloudflare HTTP logs

Usage:
  raywatch [serve] [flags]             run the Logpush intake, the API and the dashboard
                                       (what raywatch with no command does)
  raywatch scan [flags] FILE...        scan NDJSON log files (.gz or - for stdin); alerts as JSON lines on stdout
  raywatch normalize [flags] FILE...   print one ECS JSON document per record
  raywatch replay [--from T] [--to T] [--rules-dir DIR] [--ioc-dir DIR] [--data-dir DIR] [--resume] SOURCE...
                                       run archived Logpush objects (a folder, a file or
                                       s3://BUCKET/PREFIX) through the rules, as scan does
  raywatch rules list [--json] [--rules-dir DIR]
  raywatch rules check [--rules-dir DIR] [--allow-skipped] [--allow-unable]
                                       every problem of the rules with file and line; exit 0 when
                                       every rule loads and can fire
  raywatch rules exceptions [--sigma]  the alert exceptions (--sigma: as Sigma filters for a rules folder)
  raywatch rules test [--rules-dir DIR] [--junit FILE] CASES_DIR
                                       check each rule against its match/ and nomatch/ records
  raywatch cloudflare fields --zone ZONE_ID
  raywatch cloudflare connect --zone ZONE_ID --url https://HOST[:PORT]
  raywatch cloudflare status [--zone ZONE_ID]
                                       set up the Logpush job and watch it (see "raywatch cloudflare help")
  raywatch store check [--data-dir DIR]
                                       verify every page of the alert database (exit 1 when damaged)
  raywatch store recover [--data-dir DIR]
                                       copy what is readable from a damaged alert database into a new one
  raywatch bench [--records N] [--rules-dir DIR] [--iocs N] [--json FILE]
                                       measure normalize, engine, scan and the whole HTTP path
                                       against same-run baselines
  raywatch version                     print the version
  raywatch help                        print this list

Run "raywatch COMMAND -h" for the flags of a command ("raywatch serve -h" for serve's).
`

// helpCmd prints the commands.
func helpCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "raywatch help: unexpected argument %q; run 'raywatch %s -h' for the flags of a command\n", args[0], args[0])
		return errUsage
	}
	fmt.Fprint(stdout, usage)
	return nil
}
