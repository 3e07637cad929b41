package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/atc0005/go-teams-notify/v2/adaptivecard"
	"github.com/slack-go/slack"

	"airlock.dev/airlock/api/v1alpha1"
)

// Slack posts each event to a Slack-compatible incoming webhook (Slack,
// Mattermost, Rocket.Chat) as one attachment, coloured by severity.
type Slack struct {
	webhook
	channel, username string
}

// SlackMessage is what Slack posts for ev.
func SlackMessage(ev Event, channel, username string) *slack.WebhookMessage {
	if username == "" {
		username = "airlock"
	}
	color := "good"
	if ev.Severity == v1alpha1.SeverityError {
		color = "danger"
	}
	var fields []slack.AttachmentField
	if ev.Digest != "" {
		fields = append(fields, slack.AttachmentField{Title: "Digest", Value: ev.Digest})
	}
	if ev.Revision != "" {
		fields = append(fields, slack.AttachmentField{Title: "Revision", Value: ev.Revision, Short: true})
	}
	fields = append(fields, slack.AttachmentField{Title: "Severity", Value: ev.Severity, Short: true})
	return &slack.WebhookMessage{
		Username: username,
		Channel:  channel,
		Attachments: []slack.Attachment{{
			Color:    color,
			Fallback: title(ev) + ": " + message(ev),
			Title:    title(ev),
			Text:     message(ev),
			Fields:   fields,
			Footer:   "airlock-controller",
			Ts:       json.Number(strconv.FormatInt(ev.Time.Unix(), 10)),
		}},
	}
}

// Send posts ev.
func (s *Slack) Send(ctx context.Context, ev Event) error {
	body, err := json.Marshal(SlackMessage(ev, s.channel, s.username))
	if err != nil {
		return Permanent(err)
	}
	return s.post(ctx, body, nil)
}

// Teams posts each event to a Microsoft Teams incoming webhook or
// Workflows ("Post to a channel when a webhook request is received") as an
// Adaptive Card.
type Teams struct {
	webhook
}

// TeamsMessage is the Adaptive Card message Teams posts for ev.
func TeamsMessage(ev Event) (*adaptivecard.Message, error) {
	card := adaptivecard.NewCard()
	head := adaptivecard.NewTitleTextBlock(title(ev), true)
	if ev.Severity == v1alpha1.SeverityError {
		head.Color = adaptivecard.ColorAttention
	}
	if err := card.AddElement(false, head, adaptivecard.NewTextBlock(message(ev), true)); err != nil {
		return nil, err
	}
	facts := adaptivecard.NewFactSet()
	add := func(k, v string) error {
		if v == "" {
			return nil
		}
		return facts.AddFact(adaptivecard.Fact{Title: k, Value: v})
	}
	for _, f := range [][2]string{{"Release", ev.Namespace + "/" + ev.Name}, {"Digest", ev.Digest}, {"Revision", ev.Revision}, {"Severity", ev.Severity}} {
		if err := add(f[0], f[1]); err != nil {
			return nil, err
		}
	}
	if err := card.AddFactSet(false, facts); err != nil {
		return nil, err
	}
	msg, err := adaptivecard.NewMessageFromCard(card)
	if err != nil {
		return nil, err
	}
	if err := msg.Validate(); err != nil {
		return nil, err
	}
	return msg, nil
}

// Send posts ev.
func (t *Teams) Send(ctx context.Context, ev Event) error {
	msg, err := TeamsMessage(ev)
	if err != nil {
		return Permanent(fmt.Errorf("build the Teams card: %w", err))
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return Permanent(err)
	}
	return t.post(ctx, body, nil)
}
