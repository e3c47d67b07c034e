// The table in this file was copied by a one-off script from
// SEKOIA-IO/intake-formats Cloudflare/http_requests fields.yml at commit
// b8f64fe (90 names; keyword and string are kindText, number and float
// kindNumber). TestHTTPRequestsFields checks it against that file when the
// shared test data is present.

package normalize

// httpRequestsFields holds the cloudflare.* custom fields SEKOIA declares for
// http_requests and the type each one is cast to (rule R3). Keys absent from
// this table are not copied to cloudflare.*.
var httpRequestsFields = map[string]fieldKind{
	"BotScore":                              kindNumber, // number
	"BotScoreSrc":                           kindText,   // string
	"BotTags":                               kindObject, // object
	"CacheCacheStatus":                      kindText,   // string
	"CacheResponseBytes":                    kindNumber, // number
	"CacheResponseStatus":                   kindNumber, // number
	"CacheTieredFill":                       kindBool,   // bool
	"ClientASN":                             kindNumber, // number
	"ClientCountry":                         kindText,   // string
	"ClientDeviceType":                      kindText,   // string
	"ClientIP":                              kindText,   // string
	"ClientIPClass":                         kindText,   // string
	"ClientMTLSAuthCertFingerprint":         kindText,   // string
	"ClientMTLSAuthStatus":                  kindText,   // string
	"ClientRequestBytes":                    kindNumber, // number
	"ClientRequestHost":                     kindText,   // string
	"ClientRequestMethod":                   kindText,   // string
	"ClientRequestPath":                     kindText,   // string
	"ClientRequestProtocol":                 kindText,   // string
	"ClientRequestReferer":                  kindText,   // string
	"ClientRequestScheme":                   kindText,   // string
	"ClientRequestSource":                   kindText,   // string
	"ClientRequestURI":                      kindText,   // string
	"ClientRequestUserAgent":                kindText,   // string
	"ClientSSLCipher":                       kindText,   // string
	"ClientSSLProtocol":                     kindText,   // string
	"ClientSrcPort":                         kindNumber, // number
	"ClientTCPRTTMs":                        kindNumber, // number
	"ClientXRequestedWith":                  kindText,   // string
	"Cookies":                               kindObject, // object
	"EdgeCFConnectingO2O":                   kindBool,   // bool
	"EdgeColoCode":                          kindText,   // keyword
	"EdgeColoID":                            kindNumber, // number
	"EdgeEndTimestamp":                      kindText,   // keyword
	"EdgePathingOp":                         kindText,   // keyword
	"EdgePathingSrc":                        kindText,   // keyword
	"EdgePathingStatus":                     kindText,   // keyword
	"EdgeRateLimitAction":                   kindText,   // keyword
	"EdgeRateLimitID":                       kindNumber, // number
	"EdgeRequestHost":                       kindText,   // keyword
	"EdgeResponseBodyBytes":                 kindNumber, // number
	"EdgeResponseBytes":                     kindNumber, // number
	"EdgeResponseCompressionRatio":          kindNumber, // float
	"EdgeResponseContentType":               kindText,   // keyword
	"EdgeResponseStatus":                    kindNumber, // number
	"EdgeServerIP":                          kindText,   // keyword
	"EdgeStartTimestamp":                    kindText,   // keyword
	"EdgeTimeToFirstByteMs":                 kindNumber, // number
	"FirewallMatchesActions":                kindText,   // keyword
	"FirewallMatchesRuleIDs":                kindText,   // keyword
	"FirewallMatchesSources":                kindText,   // keyword
	"JA3Hash":                               kindText,   // keyword
	"OriginDNSResponseTimeMs":               kindNumber, // number
	"OriginIP":                              kindText,   // keyword
	"OriginRequestHeaderSendDurationMs":     kindNumber, // number
	"OriginResponseBytes":                   kindNumber, // number
	"OriginResponseDurationMs":              kindNumber, // number
	"OriginResponseHTTPExpires":             kindText,   // keyword
	"OriginResponseHTTPLastModified":        kindText,   // keyword
	"OriginResponseHeaderReceiveDurationMs": kindNumber, // number
	"OriginResponseStatus":                  kindNumber, // number
	"OriginResponseTime":                    kindNumber, // number
	"OriginSSLProtocol":                     kindText,   // keyword
	"OriginTCPHandshakeDurationMs":          kindNumber, // number
	"OriginTLSHandshakeDurationMs":          kindNumber, // number
	"ParentRayID":                           kindText,   // keyword
	"RayID":                                 kindText,   // keyword
	"RequestHeaders":                        kindObject, // object
	"ResponseHeaders":                       kindObject, // object
	"SecurityAction":                        kindText,   // keyword
	"SecurityActions":                       kindText,   // keyword
	"SecurityLevel":                         kindText,   // keyword
	"SecurityRuleDescription":               kindText,   // keyword
	"SecurityRuleID":                        kindText,   // keyword
	"SecurityRuleIDs":                       kindText,   // keyword
	"SecuritySources":                       kindText,   // keyword
	"SmartRouteColoID":                      kindNumber, // number
	"UpperTierColoID":                       kindNumber, // number
	"WAFAction":                             kindText,   // keyword
	"WAFFlags":                              kindText,   // keyword
	"WAFMatchedVar":                         kindText,   // keyword
	"WAFProfile":                            kindText,   // keyword
	"WAFRuleID":                             kindText,   // keyword
	"WAFRuleMessage":                        kindText,   // keyword
	"WorkerCPUTime":                         kindNumber, // number
	"WorkerStatus":                          kindText,   // keyword
	"WorkerSubrequest":                      kindBool,   // bool
	"WorkerSubrequestCount":                 kindNumber, // number
	"ZoneID":                                kindNumber, // number
	"ZoneName":                              kindText,   // keyword
}
