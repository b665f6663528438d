-- Every observed act of every member, one row each, with its day (Europe/Paris), signal,
-- amount and topic. The grain of member_activity_daily and member_interests.
with identity as (
    select
        source,
        record_key,
        member_id
    from {{ ref('int_members_identity_resolved') }}
    where member_id is not null
),

emails as (
    select
        i.member_id,
        e.activity_date,
        e.signal,
        0.0 as amount_eur,
        e.topic
    from {{ ref('int_email_interactions_filtered') }} as e
    inner join identity as i on i.source = 'sendgrid_recipient' and e.email = i.record_key
),

eventbrite_registrations as (
    select
        i.member_id,
        cast(a.created_at as date) as activity_date,
        'events_registered' as signal,
        a.gross_eur as amount_eur,
        ev.topic
    from {{ ref('stg_eventbrite__attendees') }} as a
    inner join identity as i on i.source = 'eventbrite_attendee' and a.attendee_id = i.record_key
    left join {{ ref('stg_eventbrite__events') }} as ev on a.event_id = ev.event_id
    where not a.cancelled
),

eventbrite_attendance as (
    select
        i.member_id,
        cast(ev.start_at as date) as activity_date,
        'events_attended' as signal,
        0.0 as amount_eur,
        ev.topic
    from {{ ref('stg_eventbrite__attendees') }} as a
    inner join identity as i on i.source = 'eventbrite_attendee' and a.attendee_id = i.record_key
    inner join {{ ref('stg_eventbrite__events') }} as ev on a.event_id = ev.event_id
    where a.checked_in
),

helloasso as (
    select
        i.member_id,
        it.partition_date as activity_date,
        case it.item_type
            when 'Registration' then 'events_registered'
            when 'Membership' then 'dues_paid'
            else 'donations'
        end as signal,
        it.amount_eur,
        f.topic
    from {{ ref('stg_helloasso__items') }} as it
    inner join identity as i on i.source = 'helloasso_item' and i.record_key = cast(it.item_id as varchar)
    left join {{ ref('stg_helloasso__forms') }} as f on it.form_slug = f.form_slug
    where it.state <> 'Canceled'
),

dues as (
    select
        member_id,
        paid_on as activity_date,
        'dues_paid' as signal,
        amount_eur,
        null as topic
    from {{ ref('stg_membership__dues_payments') }}
),

votes as (
    select
        member_id,
        cast(voted_at as date) as activity_date,
        'votes' as signal,
        0.0 as amount_eur,
        null as topic
    from {{ ref('stg_membership__assembly_votes') }}
),

group_joins as (
    select
        gm.member_id,
        gm.joined_on as activity_date,
        'group_joins' as signal,
        0.0 as amount_eur,
        g.topic
    from {{ ref('stg_membership__group_memberships') }} as gm
    left join {{ ref('stg_membership__groups') }} as g on gm.group_id = g.group_id
),

volunteering as (
    select
        member_id,
        started_on as activity_date,
        'volunteer_starts' as signal,
        0.0 as amount_eur,
        null as topic
    from {{ ref('stg_membership__volunteer_roles') }}
)

select * from emails
union all
select * from eventbrite_registrations
union all
select * from eventbrite_attendance
union all
select * from helloasso
union all
select * from dues
union all
select * from votes
union all
select * from group_joins
union all
select * from volunteering
