package openai

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/phalanx-llm/phalanx/pipeline/dataplane"
)

// apiError is OpenAI's error body.
type apiError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func newAPIError(typ, code, msg string) apiError {
	var e apiError
	e.Error.Message, e.Error.Type = msg, typ
	if code != "" {
		e.Error.Code = &code
	}
	return e
}

func writeError(w http.ResponseWriter, httpStatus int, typ, code, msg string) {
	e := newAPIError(typ, code, msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	json.NewEncoder(w).Encode(e)
}

func badRequest(w http.ResponseWriter, format string, a ...any) {
	writeError(w, http.StatusBadRequest, "invalid_request_error", "", fmt.Sprintf(format, a...))
}

// writeStatus maps a generation error to an HTTP status in OpenAI's shape.
func writeStatus(w http.ResponseWriter, err error) {
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.InvalidArgument, codes.OutOfRange:
		writeError(w, http.StatusBadRequest, "invalid_request_error", "", st.Message())
	case codes.ResourceExhausted:
		// Full: at the session limit with the queue full, or a worker out
		// of KV cache budget. Worth retrying later, as Retry-After says.
		retry := dataplane.RetryDelay(err)
		if retry <= 0 {
			retry = dataplane.RetryAfter
		}
		w.Header().Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
		writeError(w, http.StatusTooManyRequests, "rate_limit_error", "overloaded", st.Message())
	case codes.Unavailable:
		writeError(w, http.StatusServiceUnavailable, "server_error", "unavailable", st.Message())
	case codes.Canceled, codes.DeadlineExceeded:
		writeError(w, 499, "server_error", "canceled", st.Message())
	default:
		writeError(w, http.StatusInternalServerError, "server_error", "", st.Message())
	}
}
