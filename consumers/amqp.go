package consumers

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// dialTimeout bounds one connection attempt.
const dialTimeout = 15 * time.Second

// parseAMQPURL parses the server URL. Errors never contain the URL itself,
// since it may carry a password.
func parseAMQPURL(raw string) (amqp.URI, error) {
	uri, err := amqp.ParseURI(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return amqp.URI{}, fmt.Errorf("parsing AMQP URL: %w", err)
	}
	return uri, nil
}

// maskedURL renders uri for logs with the password replaced by ***.
func maskedURL(uri amqp.URI) string {
	var b strings.Builder
	b.WriteString(uri.Scheme + "://")
	if uri.Username != "" {
		// url.UserPassword would escape the asterisks.
		b.WriteString(url.User(uri.Username).String() + ":***@")
	}
	b.WriteString(net.JoinHostPort(uri.Host, strconv.Itoa(uri.Port)))
	// The default vhost "/" is written "/%2F", the way ParseURI reads it.
	b.WriteString("/" + url.PathEscape(uri.Vhost))
	return b.String()
}

// dialConfig is the amqp091 configuration for one consumer's connection. The
// consumer's vhost goes into Config.Vhost, which DialConfig prefers over the
// URL's path, so no vhost is ever spliced into a URL string by hand.
func dialConfig(vhost, consumerName string, heartbeat time.Duration) amqp.Config {
	return amqp.Config{
		Vhost:     vhost,
		Heartbeat: heartbeat,
		Locale:    "en_US",
		Dial:      amqp.DefaultDial(dialTimeout),
		Properties: amqp.Table{
			"connection_name": "warren-" + consumerName,
			"product":         "warren",
		},
	}
}

// backoff is capped exponential backoff with jitter for reconnects.
type backoff struct {
	min, max time.Duration
	factor   float64 // growth per attempt; 0 means 2
	attempt  int
}

// next returns the wait before the next attempt: min*factor^attempt capped
// at max, jittered into [d/2, d] so many consumers do not redial in
// lockstep.
func (b *backoff) next() time.Duration {
	f := b.factor
	if f < 1 {
		f = 2
	}
	d := b.min
	for i := 0; i < b.attempt && d < b.max; i++ {
		d = time.Duration(float64(d) * f)
		if f == 1 {
			break
		}
	}
	d = min(d, b.max)
	b.attempt++
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half+1)
}

func (b *backoff) reset() { b.attempt = 0 }

// isAMQPCode reports whether err is an AMQP error with the given reply code.
func isAMQPCode(err error, code int) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == code
}
